package producer_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// load writes transactions of 1-10 rows to tables load.t0..t<n-1>, one writer
// per table, and remembers which ids committed (COMMIT returned nil).
type load struct {
	tables    int
	mu        sync.Mutex
	committed [][]int64
	stop      chan struct{}
	wg        sync.WaitGroup
}

func startLoad(t *testing.T, db *sql.DB, tables int) *load {
	t.Helper()
	l := &load{tables: tables, committed: make([][]int64, tables), stop: make(chan struct{})}
	for i := 0; i < tables; i++ {
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE IF NOT EXISTS wl.t%d (id BIGINT PRIMARY KEY, payload VARCHAR(64))", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < tables; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			next := int64(1)
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				n := 1 + rand.IntN(10)
				tx, err := db.Begin()
				if err != nil {
					t.Errorf("begin: %v", err)
					return
				}
				for k := 0; k < n; k++ {
					if _, err := tx.Exec(fmt.Sprintf("INSERT INTO wl.t%d VALUES (?, ?)", i), next+int64(k), "payload"); err != nil {
						t.Errorf("insert: %v", err)
						_ = tx.Rollback()
						return
					}
				}
				if err := tx.Commit(); err != nil {
					t.Errorf("commit: %v", err)
					return
				}
				l.mu.Lock()
				for k := 0; k < n; k++ {
					l.committed[i] = append(l.committed[i], next+int64(k))
				}
				l.mu.Unlock()
				next += int64(n)
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
			}
		}()
	}
	return l
}

// finish stops the writers and returns the committed ids per table.
func (l *load) finish() [][]int64 {
	close(l.stop)
	l.wg.Wait()
	return l.committed
}

// checkDelivery verifies what a subject holds against the committed ids:
// every id is there, the first deliveries are in commit order, and every
// duplicate belongs to an exact in-order replay of an earlier suffix (what a
// restart from a checkpoint produces). It returns the number of duplicates.
func checkDelivery(t *testing.T, subject string, committed []int64, got []*envelope.Envelope) int {
	t.Helper()
	type coord struct {
		file     string
		pos, row int64
	}
	key := func(e *envelope.Envelope) coord {
		return coord{e.Source.File, int64(e.Source.Pos), int64(e.Source.Row)}
	}
	less := func(a, b coord) bool {
		if a.file != b.file {
			return a.file < b.file
		}
		if a.pos != b.pos {
			return a.pos < b.pos
		}
		return a.row < b.row
	}
	var distinct []*envelope.Envelope // first deliveries, in order
	index := map[coord]int{}          // coordinate -> index in distinct
	replayNext := -1                  // index in distinct the replay must show next
	dups := 0
	for i, e := range got {
		c := key(e)
		if j, seen := index[c]; seen {
			dups++
			if replayNext >= 0 && j != replayNext {
				t.Fatalf("%s message %d (%s) breaks the replay: expected %s next", subject, i, e.ID, distinct[replayNext].ID)
			}
			if replayNext < 0 && j == len(distinct)-1 {
				// A replay of just the last message.
			}
			replayNext = j + 1
			if replayNext == len(distinct) {
				replayNext = -1
			}
			continue
		}
		if replayNext >= 0 {
			t.Fatalf("%s message %d (%s) is new while a replay had not caught up (expected %s)", subject, i, e.ID, distinct[replayNext].ID)
		}
		if len(distinct) > 0 && !less(key(distinct[len(distinct)-1]), c) {
			t.Fatalf("%s message %d (%s) is out of binlog order after %s", subject, i, e.ID, distinct[len(distinct)-1].ID)
		}
		index[c] = len(distinct)
		distinct = append(distinct, e)
	}
	if len(distinct) != len(committed) {
		t.Fatalf("%s: %d distinct rows delivered, %d committed", subject, len(distinct), len(committed))
	}
	for i, e := range distinct {
		if id := intField(t, e.After, "id"); id != committed[i] {
			t.Fatalf("%s: first delivery %d is id %d, commit order says %d (lost or reordered)", subject, i, id, committed[i])
		}
	}
	return dups
}

// TestKill9UnderLoad kills the producer with SIGKILL at random moments of a
// write load, 20 times, then lets a final run catch up: no committed row is
// lost, first deliveries are in commit order, duplicates only in-order
// replays.
func TestKill9UnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.set("Batch.MaxRows", 64)
	e.db.Exec(t, "CREATE DATABASE wl")
	// The first start checkpoints the server's current position; the load
	// begins after it, so every committed row is owed to the subjects.
	first := e.start()
	waitLog(t, first, "binlog stream started")
	l := startLoad(t, e.db.DB(t), 3)
	time.Sleep(300 * time.Millisecond)
	first.kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := 1; i < 20 && ctx.Err() == nil; i++ {
		p := e.start()
		time.Sleep(time.Duration(150+rand.IntN(600)) * time.Millisecond)
		p.kill()
	}
	committed := l.finish()
	p := e.start()
	waitLog(t, p, "binlog stream started")
	total, dups := 0, 0
	for i := range committed {
		e.waitDistinct(fmt.Sprintf("wl.t%d", i), len(committed[i]), 2*time.Minute)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("final run exit %d:\n%s", code, p.output())
	}
	for i := range committed {
		subject := fmt.Sprintf("wl.t%d", i)
		dups += checkDelivery(t, subject, committed[i], e.read(subject))
		total += len(committed[i])
	}
	t.Logf("20 kills: %d rows committed, all delivered, %d duplicates (in-order replays)", total, dups)
	if total == 0 {
		t.Fatal("the load committed nothing")
	}
}
