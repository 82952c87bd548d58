package binlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestEnvelopeChain: every envelope carries the pass's binlog history id,
// and names the previous change of its table in the pass ("prev"; none for
// a table's first), across interleaved tables and a DDL. The key order of
// the whole envelope is pinned in testdata/envelope_shape.golden.json (run-
// dependent values replaced).
func TestEnvelopeChain(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, src, log := connectTest(ctx, t, db)
	db.Exec(t, "CREATE DATABASE c", "CREATE TABLE c.a (id INT PRIMARY KEY)", "CREATE TABLE c.b (id INT PRIMARY KEY)")
	start, err := src.CurrentPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start.History = "0123456789ab"
	db.Exec(t, "INSERT INTO c.a VALUES (1), (2)", "INSERT INTO c.b VALUES (1)", "ALTER TABLE c.a ADD COLUMN x INT",
		"INSERT INTO c.a VALUES (3, 3)", "INSERT INTO c.b VALUES (2)")
	events := make(chan Event, 64)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- NewReader(cfg, src, log).Run(ctx, start, stop, events) }()
	var rows []Row
	for len(rows) < 5 {
		select {
		case ev := <-events:
			rows = append(rows, ev.Rows...)
		case err := <-done:
			t.Fatalf("reader stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("got %d of 5 rows", len(rows))
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	for _, r := range rows {
		env, err := envelope.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if env.Source.History != start.History || r.Event.History != start.History {
			t.Errorf("%s: history %q (row %q), want %q", env.ID, env.Source.History, r.Event.History, start.History)
		}
		if env.Prev != last[env.Table] {
			t.Errorf("%s (%s): prev %q, want %q", env.ID, env.Table, env.Prev, last[env.Table])
		}
		last[env.Table] = env.ID
		if c := r.Source(); c.File != env.Source.File || c.Pos != env.Source.Pos || c.Row != env.Source.Row {
			t.Errorf("%s: the row's coordinate %+v differs from its envelope's", env.ID, c)
		}
	}
	// The shape: keys in order, run-dependent values replaced.
	shape := regexp.MustCompile(`"(id|prev|file|gtid|ts)":"[^"]*"|"(pos|server_id)":\d+`).ReplaceAllStringFunc(string(rows[1].Data), func(m string) string {
		k := m[:bytes.IndexByte([]byte(m), ':')]
		return k + `:"<` + k[1:len(k)-1] + `>"`
	})
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(shape), "", "  "); err != nil {
		t.Fatal(err)
	}
	compareGolden(t, "envelope_shape", append(pretty.Bytes(), '\n'))
}

// TestLastRowsCarryTheBoundary: a transaction's last rows event and its
// boundary reach the pipeline as one Event (rows, then the boundary after
// them); a transaction of two rows events hands over its first alone.
func TestLastRowsCarryTheBoundary(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, src, log := connectTest(ctx, t, db)
	db.Exec(t, "CREATE DATABASE lb", "CREATE TABLE lb.t (id INT PRIMARY KEY)")
	start, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(t, "INSERT INTO lb.t VALUES (1)", "BEGIN", "INSERT INTO lb.t VALUES (2)", "INSERT INTO lb.t VALUES (3)", "COMMIT")
	events := make(chan Event, 64)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- NewReader(cfg, src, log).Run(ctx, start, stop, events) }()
	var got []string
	rows := 0
	for rows < 3 {
		select {
		case ev := <-events:
			rows += len(ev.Rows)
			got = append(got, fmt.Sprintf("rows=%d boundary=%v", len(ev.Rows), ev.Boundary))
		case err := <-done:
			t.Fatalf("reader stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("events so far: %v", got)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "[rows=1 boundary=true rows=1 boundary=false rows=1 boundary=true]"; fmt.Sprint(got) != want {
		t.Errorf("events %v, want %s", got, want)
	}
}

// TestNothingHeldWhileReserving: the reader reserves an event's bytes only
// when every event it reserved before was handed on. A reservation may
// wait until earlier bytes are published and released; an event kept back
// meanwhile (to carry its transaction's boundary) would never be, and two
// large rows events in a row would stall the producer for good.
func TestNothingHeldWhileReserving(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, src, log := connectTest(ctx, t, db)
	db.Exec(t, "CREATE DATABASE nh", "CREATE TABLE nh.t (id INT PRIMARY KEY)")
	start, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(t, "BEGIN", "INSERT INTO nh.t VALUES (1)", "INSERT INTO nh.t VALUES (2)", "INSERT INTO nh.t VALUES (3)", "COMMIT")
	var reserved, handedOn atomic.Int32
	violations := make(chan string, 8)
	cfg.Reserve = func(ctx context.Context, n int) error {
		// The receiver counts an event just after the reader's send
		// returns: give it a moment, but an event kept back never comes.
		deadline := time.Now().Add(time.Second)
		for handedOn.Load() != reserved.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if r, h := reserved.Load(), handedOn.Load(); r != h {
			violations <- fmt.Sprintf("reserving with %d of %d reserved events not handed on", r-h, r)
		}
		reserved.Add(1)
		return nil
	}
	events := make(chan Event) // unbuffered: handed on = received
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- NewReader(cfg, src, log).Run(ctx, start, stop, events) }()
	for rows := 0; rows < 3; {
		select {
		case ev := <-events:
			if ev.Bytes > 0 {
				handedOn.Add(1)
			}
			rows += len(ev.Rows)
		case err := <-done:
			t.Fatalf("reader stopped: %v", err)
		case <-ctx.Done():
			t.Fatal("the three rows never arrived")
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(violations)
	for v := range violations {
		t.Error(v)
	}
}
