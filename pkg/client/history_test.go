package client_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// errorLog collects what a client reports through OnError.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) { l.mu.Lock(); l.errs = append(l.errs, err); l.mu.Unlock() }

// count returns how many reported errors are (or wrap) a *T.
func count[T error](l *errorLog) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.errs {
		var t T
		if errors.As(e, &t) {
			n++
		}
	}
	return n
}

// TestHistoryChangeIsHandedOverNotDropped: consumers with a bolt dedup file
// have handed over changes of one binlog history; then the history changes
// under them (RESET MASTER, a renamed binlog, another server), and the
// producer continues after `checkpoint reset` with coordinates below the
// ones the consumers remember. Every new change is handed over and the
// change of history is reported; with StopOnHistoryChange the subscription
// stops at it instead, and says why.
func TestHistoryChangeIsHandedOverNotDropped(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(t *testing.T, e *e2e.Env)
	}{
		{"reset master", func(t *testing.T, e *e2e.Env) {
			e.DB.Exec(t, "RESET MASTER")
		}},
		{"renamed binlog", func(t *testing.T, e *e2e.Env) {
			// "binlog.000001" sorts before "mysql-bin.000001".
			e.DB.Stop(t)
			e.DB.StartWith(t, "--log-bin=binlog")
		}},
		{"another server", func(t *testing.T, e *e2e.Env) {
			other := testenv.StartMariaDB(t, testenv.MariaDBOptions{ExtraArgs: []string{"--server-id=2"}})
			other.CreateReplicationUser(t, "dbsync", "secret")
			other.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
			e.DB = other
			e.Set("Mysql.Port", strconv.Itoa(other.Port))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachBroker(t, func(t *testing.T, broker string) {
				e, p := newEnv(t, broker)
				// Pad the first history, so its coordinates are beyond the
				// next one's.
				e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))",
					"CREATE TABLE shop.pad (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200))")
				for i := 0; i < 50; i++ {
					e.DB.Exec(t, "INSERT INTO shop.pad (v) VALUES (REPEAT('p', 200))")
				}
				var deliveredLog, stoppedLog errorLog
				delivered, stopped := newRecorder(), newRecorder()
				subscribe := func(id string, rec *recorder, log *errorLog, stop bool) *client.Subscription {
					dedup, err := client.OpenBoltDedup(filepath.Join(e.Dir, id+".db"))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = dedup.Close() })
					c := newClient(t, e, id, func(cfg *client.Config) {
						cfg.Dedup, cfg.OnError, cfg.StopOnHistoryChange = dedup, log.add, stop
					})
					sub, err := client.Subscribe(c, "shop", "item", func(_ context.Context, ch client.Change[Item]) error {
						rec.add(ch.After.ID)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					return sub
				}
				subscribe("hand-over", delivered, &deliveredLog, false)
				stopSub := subscribe("stop", stopped, &stoppedLog, true)
				for id := 1; id <= 5; id++ {
					e.DB.Exec(t, "INSERT INTO shop.item VALUES ("+strconv.Itoa(id)+", 'old')")
				}
				delivered.waitCount(t, 5, 30*time.Second)
				stopped.waitCount(t, 5, 30*time.Second)
				if code := p.Stop(); code != 0 {
					t.Fatalf("producer exit %d:\n%s", code, p.Output())
				}

				tc.change(t, e)
				if code, out, errOut := e.Command("checkpoint", "reset"); code != 0 {
					t.Fatalf("checkpoint reset: exit %d\n%s\n%s", code, out, errOut)
				}
				p = e.Start()
				e2e.WaitLog(t, p, "binlog stream started")
				for id := 6; id <= 10; id++ {
					e.DB.Exec(t, "INSERT INTO shop.item VALUES ("+strconv.Itoa(id)+", 'new')")
				}
				delivered.waitCount(t, 10, 30*time.Second)
				wantIDs(t, "after the history changed", delivered.snapshot(), 1, 10)
				if n := count[*client.HistoryChangeError](&deliveredLog); n != 1 {
					t.Errorf("%d history changes reported, want 1: %v", n, deliveredLog.errs)
				}

				deadline := time.Now().Add(15 * time.Second)
				for stopSub.Err() == nil && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				var herr *client.HistoryChangeError
				if !errors.As(stopSub.Err(), &herr) {
					t.Fatalf("with StopOnHistoryChange, Err() = %v; want a HistoryChangeError", stopSub.Err())
				}
				t.Logf("the stopping subscription says: %v", stopSub.Err())
				time.Sleep(300 * time.Millisecond)
				wantIDs(t, "with StopOnHistoryChange", stopped.snapshot(), 1, 5)
			})
		})
	}
}
