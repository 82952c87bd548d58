package client_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/test/e2e"
)

// TestSnapshotReadsThroughTheSDK: a handler gets a snapshot's rows as
// client.Read changes, in order with the live changes of the table, while
// the producer is killed during the snapshot: the de-duplication drops the
// replays (the handler sees coordinates only increase) but no snapshot row,
// and the handler's table ends equal to the source's.
func TestSnapshotReadsThroughTheSDK(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		t.Parallel()
		e := e2e.NewEnvBroker(t, producerBin, broker)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(40))")
		const rows = 6000
		for i := 0; i < rows; i += 1000 {
			var vals []string
			for j := i; j < i+1000; j++ {
				vals = append(vals, fmt.Sprintf("(%d, 'n%d')", j, j))
			}
			e.DB.Exec(t, "INSERT INTO shop.item VALUES "+strings.Join(vals, ","))
		}
		e.Set("Snapshot.Mode", "initial")
		e.Set("Snapshot.ChunkRows", 100)
		e.Set("Snapshot.Pause", "60ms")
		e.Set("Batch.MaxRows", 64)

		p := e.Start()
		e2e.WaitLog(t, p, "binlog stream started") // (JetStream: the stream exists)
		var mu sync.Mutex
		table := map[int64]string{}
		var last client.Coordinate
		reads, regressions := 0, 0
		c := newClient(t, e, "c-snap", nil)
		if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
			mu.Lock()
			defer mu.Unlock()
			coord := client.Coordinate{File: ch.Source.File, Pos: ch.Source.Pos, Row: ch.Source.Row}
			if last.File != "" && coord.Compare(last) <= 0 {
				regressions++
			}
			last = coord
			switch ch.Type {
			case client.Read, client.Insert, client.Update:
				if ch.Type == client.Read {
					reads++
					if ch.Source.Snapshot == nil {
						t.Errorf("read change %s without its snapshot", ch.ID)
					}
				}
				if ch.Type == client.Update && ch.Before.ID != ch.After.ID {
					delete(table, ch.Before.ID)
				}
				table[ch.After.ID] = ch.After.Name
			case client.Delete:
				delete(table, ch.Before.ID)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		db := e.DB.DB(t)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			rng := rand.New(rand.NewPCG(3, 4))
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				id := rng.IntN(rows + 500)
				var err error
				switch rng.IntN(3) {
				case 0:
					_, err = db.Exec("INSERT INTO shop.item VALUES (?, 'ins') ON DUPLICATE KEY UPDATE name = CONCAT('dup', id)", id)
				case 1:
					_, err = db.Exec("UPDATE shop.item SET name = ? WHERE id = ?", fmt.Sprintf("u%d", rng.IntN(100)), id)
				default:
					_, err = db.Exec("DELETE FROM shop.item WHERE id = ?", id)
				}
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
		for k := 0; k < 3; k++ {
			time.Sleep(time.Duration(300+rand.IntN(300)) * time.Millisecond)
			p.Kill()
			p = e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
		}
		waitSnapshotDone(t, e)
		close(stop)
		<-done
		e.DB.Exec(t, "INSERT INTO shop.item VALUES (-1, 'the end')")
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			_, end := table[-1]
			mu.Unlock()
			if end {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the handler did not get the final change within a minute")
			}
			time.Sleep(20 * time.Millisecond)
		}
		want := map[int64]string{}
		rs, err := db.Query("SELECT id, name FROM shop.item")
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var id int64
			var name string
			if err := rs.Scan(&id, &name); err != nil {
				t.Fatal(err)
			}
			want[id] = name
		}
		rs.Close()
		mu.Lock()
		defer mu.Unlock()
		if regressions > 0 {
			t.Errorf("the handler got %d changes at or before one it had already got (a replay let through, or a row overtaking)", regressions)
		}
		diff := 0
		for id, name := range want {
			if table[id] != name {
				if diff < 5 {
					t.Errorf("id %d: handler's table has %q, source %q", id, table[id], name)
				}
				diff++
			}
		}
		if len(table) != len(want) || diff > 0 {
			t.Fatalf("handler's table: %d rows, source %d, %d differ", len(table), len(want), diff)
		}
		t.Logf("%s: 3 kills during the snapshot; %d read changes handed over, the handler's table equals the source (%d rows)", broker, reads, len(want))
	})
}

// waitSnapshotDone polls "producer snapshot status" until no snapshot runs.
func waitSnapshotDone(t *testing.T, e *e2e.Env) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, out, stderr := e.Command("snapshot", "status")
		if code == 0 && strings.Contains(out, "no snapshot running") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot did not finish within 2 minutes: %s%s", out, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
