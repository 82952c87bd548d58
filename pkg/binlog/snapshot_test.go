package binlog

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// snapshotHarness runs a Reader with a SnapshotFeed on db from start and
// collects the rows it hands on.
type snapshotHarness struct {
	t      *testing.T
	cfg    Config
	src    *Source
	feed   *SnapshotFeed
	rows   chan Row
	events chan Event
	stop   chan struct{}
	done   chan error
	// withoutLow submits chunks without their Low watermark.
	withoutLow bool
}

func startSnapshotHarness(ctx context.Context, t *testing.T, db *testenv.MariaDB, start position.Position) *snapshotHarness {
	t.Helper()
	cfg, src, log := connectTest(ctx, t, db)
	h := &snapshotHarness{t: t, cfg: cfg, src: src, feed: NewSnapshotFeed(), rows: make(chan Row, 1<<16),
		events: make(chan Event, 64), stop: make(chan struct{}), done: make(chan error, 1)}
	rcfg := cfg
	rcfg.Snapshots = h.feed
	go func() { h.done <- NewReader(rcfg, src, log).Run(ctx, start, h.stop, h.events) }()
	go func() {
		for ev := range h.events {
			for _, r := range ev.Rows {
				h.rows <- r
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-h.stop:
		default:
			close(h.stop)
		}
	})
	return h
}

// snapshotTable reads db.table in chunks of n through the feed, as the
// producer does, and returns the rows published and the chunks read.
func (h *snapshotHarness) snapshotTable(ctx context.Context, db, table string, n int) (published, chunks int) {
	h.t.Helper()
	rd, err := OpenSnapshotReader(ctx, h.cfg, quietLog())
	if err != nil {
		h.t.Fatal(err)
	}
	defer rd.Close()
	plan, err := rd.Plan(ctx, db, table)
	if err != nil {
		h.t.Fatal(err)
	}
	var after []position.KeyValue
	var rows int64
	for {
		var key []string
		if !plan.Keyless() {
			key = plan.KeyColumns()
		}
		w := h.feed.Open(db, table, key)
		c, err := rd.ReadChunk(ctx, plan, after, n)
		if err != nil {
			h.t.Fatal(err)
		}
		chunks++
		if h.withoutLow {
			c.Low = position.Position{}
		}
		res, err := h.feed.Submit(c, w, envelope.SnapshotRef{ID: "snap-test", Chunk: chunks, Last: c.Last}, rows, nil).Wait(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		if res.Retry {
			chunks--
			continue
		}
		published += res.Published
		rows += int64(c.Rows)
		after = c.After
		if c.Last {
			return published, chunks
		}
	}
}

// TestSnapshotMatchesBinlog reads every type of the contract both ways:
// each row a snapshot reads is byte for byte the "after" of the row's last
// binlog change, and the read envelopes match their golden file.
func TestSnapshotMatchesBinlog(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, src, _ := connectTest(ctx, t, db)
	start, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	execOnOneConn(ctx, t, db, testenv.ReadSQLFile(t, "testdata/all_types.sql"))
	h := startSnapshotHarness(ctx, t, db, start)
	// The binlog's changes first: 6 of them.
	latest := map[string]json.RawMessage{}
	for i := 0; i < 6; i++ {
		r := h.next(ctx)
		env, err := envelope.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		id := string(env.After["id"])
		if env.Type == envelope.TypeDelete {
			id = string(env.Before["id"])
			delete(latest, id)
			continue
		}
		latest[id] = afterOf(t, r.Data)
	}
	published, chunks := h.snapshotTable(ctx, "shop", "all_types", 2)
	if published != 3 || chunks != 2 {
		t.Fatalf("snapshot published %d rows in %d chunks, want 3 in 2", published, chunks)
	}
	var golden []json.RawMessage
	for i := 0; i < 3; i++ {
		r := h.next(ctx)
		env, err := envelope.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if env.Type != envelope.TypeRead || env.Before != nil || env.Source.Snapshot == nil || env.Source.Snapshot.ID != "snap-test" {
			t.Fatalf("snapshot row %s: type %q, snapshot %+v", r.ID, env.Type, env.Source.Snapshot)
		}
		if wantLast := env.Source.Snapshot.Chunk == 2; env.Source.Snapshot.Last != wantLast {
			t.Errorf("row %s of chunk %d: last=%v", r.ID, env.Source.Snapshot.Chunk, env.Source.Snapshot.Last)
		}
		id := string(env.After["id"])
		want, ok := latest[id]
		if !ok {
			t.Fatalf("snapshot read row id %s, which the binlog deleted or never wrote", id)
		}
		if got := afterOf(t, r.Data); !bytes.Equal(got, want) {
			t.Errorf("row id %s: the snapshot reads\n%s\nthe binlog wrote\n%s", id, got, want)
		}
		golden = append(golden, normalize(t, r))
	}
	b, err := json.MarshalIndent(golden, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	compareGolden(t, "snapshot_types", append(b, '\n'))
}

func (h *snapshotHarness) next(ctx context.Context) Row {
	h.t.Helper()
	select {
	case r := <-h.rows:
		return r
	case err := <-h.done:
		h.t.Fatalf("reader stopped: %v", err)
	case <-ctx.Done():
		h.t.Fatal("no row within the deadline")
	}
	return Row{}
}

// afterOf returns the raw "after" object of an envelope.
func afterOf(t *testing.T, data []byte) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m["after"]
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// TestSnapshotChunkBeforeStreamStart: a chunk submitted before the binlog
// stream has started, on a server that then writes nothing, is published
// at the stream's start (it used to wait for the next transaction: a
// first start with Snapshot.Mode initial on an idle server stalled).
func TestSnapshotChunkBeforeStreamStart(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	db.Exec(t, "CREATE DATABASE idle", "CREATE TABLE idle.t (id INT PRIMARY KEY)", "INSERT INTO idle.t VALUES (1), (2), (3)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, src, log := connectTest(ctx, t, db)
	rd, err := OpenSnapshotReader(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	plan, err := rd.Plan(ctx, "idle", "t")
	if err != nil {
		t.Fatal(err)
	}
	feed := NewSnapshotFeed()
	w := feed.Open("idle", "t", plan.KeyColumns())
	chunk, err := rd.ReadChunk(ctx, plan, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	pending := feed.Submit(chunk, w, envelope.SnapshotRef{ID: "snap-idle", Chunk: 1, Last: true}, 0, nil)
	rcfg := cfg
	rcfg.Snapshots = feed
	events, stop, done := make(chan Event, 64), make(chan struct{}), make(chan error, 1)
	go func() { done <- NewReader(rcfg, src, log).Run(ctx, chunk.High, stop, events) }()
	defer func() { close(stop); <-done }()
	rows := 0
	deadline := time.After(10 * time.Second)
	for rows < 3 {
		select {
		case ev := <-events:
			rows += len(ev.Rows)
		case <-deadline:
			t.Fatalf("the chunk's rows were not published within 10s (got %d of 3): it waits for a transaction the idle server never writes", rows)
		}
	}
	if res, err := pending.Wait(ctx); err != nil || res.Published != 3 {
		t.Fatalf("feed result %+v, %v; want 3 rows published", res, err)
	}
}
