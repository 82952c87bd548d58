package producer_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/mq/mqtest"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/producer"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/storage/storagetest"
)

// These tests run the producer on fakes (an in-memory source, store and
// queue): the contract of its retry and checkpoint logic, in seconds and
// without servers. The same guarantees against real servers are in
// test/e2e and the fault suite.

// rig is a producer on fakes, started from checkpoint mysql-bin.000001:4.
type rig struct {
	t      *testing.T
	src    *fakeSource
	store  *storagetest.Memory
	queue  *mqtest.Recorder
	p      *producer.Producer
	cancel context.CancelFunc
	done   chan error
}

func newRig(t *testing.T, mod func(*producer.Options)) *rig {
	t.Helper()
	return newRigWith(t, mod, nil)
}

// newRigWith is newRig with the store's lease (nil for none).
func newRigWith(t *testing.T, mod func(*producer.Options), lease storage.Lease) *rig {
	t.Helper()
	r := &rig{t: t, src: newFakeSource(), store: storagetest.NewMemory("checkpoint"), queue: mqtest.NewRecorder()}
	start := position.Position{File: fakeFile, Pos: 4, History: "h1"}
	if err := r.store.Save(context.Background(), start); err != nil {
		t.Fatal(err)
	}
	opts := producer.Options{
		SourceName:   "fake",
		Subject:      func(db, table string) string { return "app." + db + "." + table },
		Batch:        producer.BatchOptions{MaxRows: 4, MaxBytes: 1 << 20, MaxWait: 20 * time.Millisecond, FlushWhenIdle: true},
		MemoryBudget: 1 << 20,
		DrainTimeout: 5 * time.Second,
		RetryMin:     5 * time.Millisecond,
		RetryMax:     20 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := producer.New(context.Background(), producer.Components{
		Store:     r.store,
		Lease:     lease,
		OpenQueue: func(context.Context) (mq.MessageQueue, error) { return r.queue, nil },
		Source:    r.src,
	}, opts, testLog(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.p = p
	return r
}

// run starts Run; stop cancels its ctx and returns its result.
func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.p.Run(ctx) }()
	r.t.Cleanup(cancel)
}

func (r *rig) stop() error {
	r.t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		r.t.Fatal("Run did not return within 10s of the stop")
		return nil
	}
}

// waitCheckpoint waits until the stored checkpoint is at want.
func (r *rig) waitCheckpoint(want position.Position) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := r.store.Get(context.Background())
		if err == nil && got.File == want.File && got.Pos == want.Pos {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("checkpoint is %v (%v), want %v", got, err, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkReplayOnly fails the test unless the queue holds every change of
// the source, where each message is either the next new change or part of
// an in-order replay that starts at a transaction: no gap, no reordering.
func (r *rig) checkReplayOnly() (replayed int) {
	r.t.Helper()
	want, txStart := r.src.IDs()
	index := map[string]int{}
	for i, id := range want {
		index[id] = i
	}
	next, prev := 0, -1
	for n, m := range r.queue.Messages() {
		i, ok := index[m.ID]
		switch {
		case !ok:
			r.t.Fatalf("message %d: %s is no change of the source", n, m.ID)
		case i > next:
			r.t.Fatalf("message %d: %s skips %s", n, m.ID, want[next])
		case i < next && i != prev+1 && !txStart[i]:
			r.t.Fatalf("message %d: replay of %s starts inside a transaction (after %d)", n, m.ID, prev)
		case i < next:
			replayed++
		default:
			next++
		}
		prev = i
	}
	if next != len(want) {
		r.t.Fatalf("%d of %d changes published; first missing %s", next, len(want), want[next])
	}
	return replayed
}

func TestUnitPublishesAndCheckpoints(t *testing.T) {
	r := newRig(t, nil)
	r.run()
	var end position.Position
	for range 5 {
		end = r.src.Append(3)
	}
	r.waitCheckpoint(end)
	if err := r.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if replayed := r.checkReplayOnly(); replayed != 0 {
		t.Fatalf("%d messages published twice without a failure", replayed)
	}
	if got, _ := r.store.Get(context.Background()); got.History != "h1" {
		t.Fatalf("checkpoint %v lost the history id h1", got)
	}
}

// TestUnitRetriesFromTheCheckpoint: a failed publish ends the pass; the
// next starts at the checkpoint, so the broker sees a replay, never a gap.
func TestUnitRetriesFromTheCheckpoint(t *testing.T) {
	r := newRig(t, nil)
	first := r.src.Append(3)
	r.run()
	r.waitCheckpoint(first)
	r.queue.FailAfter(4, mq.ErrConnectionLost) // the second row of the third transaction
	var end position.Position
	for range 3 {
		end = r.src.Append(3)
	}
	r.waitCheckpoint(end)
	if err := r.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	r.checkReplayOnly()
	// The second pass starts at a checkpoint saved before the failure: the
	// first or the second transaction's end, never past the third's start.
	starts := r.src.Starts()
	if len(starts) != 2 || starts[1].Pos < first.Pos || starts[1].Pos > 300 || !slices.Contains(r.store.Saves(), starts[1]) {
		t.Fatalf("passes started at %v, want the second at a saved checkpoint from %v to the failed transaction at 300", starts, first)
	}
}

// TestUnitPublishFailureMidWindow: with several batches in flight, a
// message refused in the middle stops everything sent behind it, and no
// checkpoint passes it before the replay.
func TestUnitPublishFailureMidWindow(t *testing.T) {
	r := newRig(t, func(o *producer.Options) { o.Batch.MaxRows = 2; o.Batch.FlushWhenIdle = false })
	r.queue.FailAfter(9, mq.ErrConnectionLost) // transaction 3 of 8, with batches behind it in flight
	var end position.Position
	for range 8 {
		end = r.src.Append(4)
	}
	r.run()
	r.waitCheckpoint(end)
	if err := r.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if replayed := r.checkReplayOnly(); replayed == 0 {
		t.Fatal("nothing was published again after the failure")
	}
	failedTx := position.Position{File: fakeFile, Pos: 300}
	starts := r.src.Starts()
	// The second pass starts at the checkpoint: had one been saved past the
	// failed message, the replay would skip it.
	if len(starts) != 2 || starts[1].Compare(failedTx) > 0 {
		t.Fatalf("passes started at %v: the second must start at or before the failed transaction %v", starts, failedTx)
	}
}

// TestUnitVanishedCheckpoint: a checkpoint that disappears from the store
// while the producer runs is written back, and the next pass starts there,
// not at the server's current position.
func TestUnitVanishedCheckpoint(t *testing.T) {
	r := newRig(t, nil)
	first := r.src.Append(2)
	r.run()
	r.waitCheckpoint(first)
	r.store.Vanish()
	r.queue.FailAfter(0, mq.ErrConnectionLost) // force a new pass
	end := r.src.Append(2)
	r.waitCheckpoint(end)
	if err := r.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	r.checkReplayOnly()
	starts := r.src.Starts()
	if len(starts) != 2 || starts[1].Pos != first.Pos || starts[1].History != "h1" {
		t.Fatalf("passes started at %v, want the second at the vanished checkpoint %v (history h1)", starts, first)
	}
}

// TestUnitRejectedMessageStops: a message the broker can never accept is a
// permanent failure: Run stops with it instead of retrying, and the
// checkpoint stays before it.
func TestUnitRejectedMessageStops(t *testing.T) {
	r := newRig(t, nil)
	first := r.src.Append(2)
	r.run()
	r.waitCheckpoint(first)
	r.queue.FailAfter(1, mq.ErrRejected)
	r.src.Append(3)
	var err error
	select {
	case err = <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop on a rejected message")
	}
	if !errors.Is(err, mq.ErrRejected) {
		t.Fatalf("Run = %v, want mq.ErrRejected", err)
	}
	if n := len(r.src.Starts()); n != 1 {
		t.Fatalf("%d passes: a rejected message was retried", n)
	}
	if got, _ := r.store.Get(context.Background()); got.Pos != first.Pos {
		t.Fatalf("checkpoint %v moved past the rejected message (want %v)", got, first)
	}
}

// TestUnitStopDuringPublish: a stop while acknowledgements are outstanding
// waits for them and saves the checkpoint; when they do not come within
// DrainTimeout, Run says so and the checkpoint stays before them.
func TestUnitStopDuringPublish(t *testing.T) {
	t.Run("acknowledged", func(t *testing.T) {
		r := newRig(t, nil)
		release := r.queue.Hold()
		end := r.src.Append(3)
		r.run()
		waitMessages(t, r.queue, 3)
		r.cancel()
		time.AfterFunc(100*time.Millisecond, release)
		if err := r.stop(); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
		if got, _ := r.store.Get(context.Background()); got.Pos != end.Pos {
			t.Fatalf("checkpoint %v after the stop, want %v", got, end)
		}
	})
	t.Run("never acknowledged", func(t *testing.T) {
		r := newRig(t, func(o *producer.Options) { o.DrainTimeout = 200 * time.Millisecond })
		r.queue.Hold()
		r.src.Append(3)
		r.run()
		waitMessages(t, r.queue, 3)
		err := r.stop()
		if err == nil || !strings.Contains(err.Error(), "graceful stop incomplete") {
			t.Fatalf("stop without acknowledgements: %v, want a graceful stop incomplete error", err)
		}
		if got, _ := r.store.Get(context.Background()); got.Pos != 4 {
			t.Fatalf("checkpoint %v moved past unacknowledged messages", got)
		}
	})
}

func waitMessages(t *testing.T, q *mqtest.Recorder, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(q.Messages()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages sent, want %d", len(q.Messages()), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func testLog(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(testWriter{t})
		l.SetLevel(logrus.DebugLevel)
	}
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestUnitRefusedStartOpensNoQueue: when the checkpoint or the source fail
// their checks, New never connects the broker (no stream is created, no
// embedded server started).
func TestUnitRefusedStartOpensNoQueue(t *testing.T) {
	for name, breakIt := range map[string]func(*storagetest.Memory, *producer.Components){
		"purged checkpoint": func(m *storagetest.Memory, _ *producer.Components) {
			_ = m.Save(context.Background(), position.Position{File: "mysql-bin.000000", Pos: 4, History: "h1"})
		},
		"preflight failure": func(_ *storagetest.Memory, c *producer.Components) {
			c.Preflight = func(context.Context, *position.Position) error { return errors.New("binlog_format is STATEMENT") }
		},
		"unreadable checkpoint": func(m *storagetest.Memory, _ *producer.Components) { m.FailNextGet(io.ErrUnexpectedEOF) },
	} {
		t.Run(name, func(t *testing.T) {
			store := storagetest.NewMemory("checkpoint")
			_ = store.Save(context.Background(), position.Position{File: fakeFile, Pos: 4, History: "h1"})
			opened := 0
			c := producer.Components{Store: store, Source: newFakeSource(),
				OpenQueue: func(context.Context) (mq.MessageQueue, error) { opened++; return mqtest.NewRecorder(), nil }}
			breakIt(store, &c)
			if _, err := producer.New(context.Background(), c, producer.Options{}, testLog(t)); err == nil {
				t.Fatal("New succeeded")
			}
			if opened != 0 {
				t.Fatal("New opened the queue before its checks passed")
			}
		})
	}
}
