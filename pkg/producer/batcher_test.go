package producer

import (
	"context"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/position"
)

func rowsEvent(n int) binlog.Event {
	ev := binlog.Event{}
	for i := 0; i < n; i++ {
		ev.Rows = append(ev.Rows, binlog.Row{DB: "d", Table: "t", ID: "x", Data: []byte("{}")})
	}
	return ev
}

func boundary(pos uint32, flush bool) binlog.Event {
	return binlog.Event{Boundary: true, Flush: flush, Position: position.Position{File: "f.000001", Pos: pos}}
}

// runBatcher feeds events (optionally one at a time, waiting between them)
// and returns the batches handed over.
func runBatcher(t *testing.T, opts BatchOptions, feed func(chan<- binlog.Event)) []*batch {
	t.Helper()
	events := make(chan binlog.Event, 1024)
	out := make(chan *batch, 1024)
	bt := &batcher{opts: opts, admit: &admitter{subject: func(db, table string) string { return db + "." + table }}}
	done := make(chan error, 1)
	go func() { done <- bt.run(context.Background(), events, out) }()
	feed(events)
	close(events)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []*batch
	for b := range out {
		got = append(got, b)
	}
	return got
}

func TestBatcherSplitsAtMaxRows(t *testing.T) {
	got := runBatcher(t, BatchOptions{MaxRows: 10, MaxBytes: 1 << 20, MaxWait: time.Hour}, func(ev chan<- binlog.Event) {
		ev <- rowsEvent(25)
		ev <- boundary(100, false)
	})
	var sizes []int
	for _, b := range got {
		sizes = append(sizes, len(b.msgs))
	}
	if len(got) != 3 || sizes[0] != 10 || sizes[1] != 10 || sizes[2] != 5 {
		t.Fatalf("batch sizes %v, want [10 10 5]", sizes)
	}
	if got[0].checkpoint != nil || got[1].checkpoint != nil {
		t.Fatal("a batch ending inside the transaction carries a checkpoint")
	}
	if got[2].checkpoint == nil || got[2].checkpoint.Pos != 100 {
		t.Fatalf("last batch checkpoint %v, want f.000001:100", got[2].checkpoint)
	}
}

// TestBatcherRowsWithTheirBoundary: an event carrying a transaction's last
// rows and its boundary (as the reader sends a single-row transaction) is
// batched like the two events it stands for, also when its rows fill the
// batch: the checkpoint never rides on a batch missing some of its rows.
func TestBatcherRowsWithTheirBoundary(t *testing.T) {
	withBoundary := func(n int, pos uint32) binlog.Event {
		ev := rowsEvent(n)
		b := boundary(pos, false)
		ev.Boundary, ev.Position = true, b.Position
		return ev
	}
	got := runBatcher(t, BatchOptions{MaxRows: 10, MaxBytes: 1 << 20, MaxWait: time.Hour}, func(ev chan<- binlog.Event) {
		ev <- withBoundary(4, 100)
		ev <- withBoundary(6, 200) // fills the batch with its last row
		ev <- withBoundary(1, 300)
	})
	if len(got) != 2 || len(got[0].msgs) != 10 || len(got[1].msgs) != 1 {
		t.Fatalf("got %d batches, want 2 of 10 and 1 rows", len(got))
	}
	if got[0].checkpoint == nil || got[0].checkpoint.Pos != 100 || got[0].transactions != 1 {
		t.Fatalf("first batch: checkpoint %v after %d transactions, want f.000001:100 after 1 (the second one's boundary comes after the batch was full)", got[0].checkpoint, got[0].transactions)
	}
	if got[1].checkpoint == nil || got[1].checkpoint.Pos != 300 || got[1].transactions != 2 {
		t.Fatalf("second batch: checkpoint %v after %d transactions, want f.000001:300 after 2", got[1].checkpoint, got[1].transactions)
	}
}

func TestBatcherFlushesWhenIdle(t *testing.T) {
	handed := make(chan time.Duration, 1)
	events := make(chan binlog.Event, 16)
	out := make(chan *batch)
	bt := &batcher{opts: BatchOptions{MaxRows: 1000, MaxBytes: 1 << 20, MaxWait: time.Hour, FlushWhenIdle: true},
		admit: &admitter{subject: func(db, table string) string { return db + "." + table }}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = bt.run(ctx, events, out) }()
	start := time.Now()
	events <- rowsEvent(1)
	events <- boundary(50, false)
	go func() { <-out; handed <- time.Since(start) }()
	select {
	case d := <-handed:
		if d > time.Second {
			t.Fatalf("idle batch handed over after %s", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("an idle stream's batch was not handed over (MaxWait is an hour)")
	}
}

func TestBatcherWithoutIdleFlushWaits(t *testing.T) {
	events := make(chan binlog.Event, 16)
	out := make(chan *batch, 4)
	bt := &batcher{opts: BatchOptions{MaxRows: 1000, MaxBytes: 1 << 20, MaxWait: 300 * time.Millisecond},
		admit: &admitter{subject: func(db, table string) string { return db + "." + table }}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = bt.run(ctx, events, out) }()
	// Twice: the second batch's wait must run as the first one's did.
	for round, pos := range []uint32{60, 120} {
		start := time.Now()
		events <- rowsEvent(3)
		events <- boundary(pos, false)
		select {
		case b := <-out:
			if d := time.Since(start); d < 250*time.Millisecond {
				t.Fatalf("batch %d handed over after %s, before MaxWait", round+1, d)
			}
			if len(b.msgs) != 3 || b.checkpoint == nil || b.checkpoint.Pos != pos {
				t.Fatalf("batch %d: %d rows, checkpoint %v, want 3 rows and position %d", round+1, len(b.msgs), b.checkpoint, pos)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("MaxWait did not flush batch %d", round+1)
		}
	}
}

func TestBatcherForcesFlushOnRotationAndDDL(t *testing.T) {
	events := make(chan binlog.Event, 16)
	out := make(chan *batch, 4)
	bt := &batcher{opts: BatchOptions{MaxRows: 1000, MaxBytes: 1 << 20, MaxWait: time.Hour},
		admit: &admitter{subject: func(db, table string) string { return db + "." + table }}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = bt.run(ctx, events, out) }()
	events <- boundary(70, true)
	select {
	case b := <-out:
		if len(b.msgs) != 0 || b.checkpoint == nil || b.checkpoint.Pos != 70 {
			t.Fatalf("forced batch %+v", b)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a rotation/DDL boundary was not flushed")
	}
}

func TestBatcherFlushesAtMaxBytes(t *testing.T) {
	got := runBatcher(t, BatchOptions{MaxRows: 1000, MaxBytes: 8, MaxWait: time.Hour}, func(ev chan<- binlog.Event) {
		ev <- rowsEvent(10) // 2 bytes each
	})
	if len(got) != 3 || len(got[0].msgs) != 4 {
		t.Fatalf("got %d batches, first %d rows; want batches of 4, 4, 2", len(got), len(got[0].msgs))
	}
}
