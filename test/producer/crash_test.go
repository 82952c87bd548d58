package producer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
)

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
			// A replay goes on in order; a new one (a kill during a
			// replay, the restart from a checkpoint behind where that
			// replay got) may start earlier, never skip ahead.
			if replayNext >= 0 && j > replayNext {
				t.Fatalf("%s message %d (%s) skips ahead in a replay: expected %s next", subject, i, e.ID, distinct[replayNext].ID)
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
		if id := e2e.IntField(t, e.After, "id"); id != committed[i] {
			t.Fatalf("%s: first delivery %d is id %d, commit order says %d (lost or reordered)", subject, i, id, committed[i])
		}
	}
	return dups
}

// TestKill9UnderLoad kills the producer with SIGKILL at random moments of a
// write load, 20 times, then lets a final run catch up: no committed row is
// lost, first deliveries are in commit order, duplicates only in-order
// replays. On JetStream the stream must hold no duplicate at all: replays
// carry the same Nats-Msg-Id and fall inside the duplicate window. Kafka
// (franz-go's in-process cluster) stores replays like NATS Streaming.
func TestKill9UnderLoad(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{e2e.Stan, e2e.JetStream, e2e.Kafka} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			e := e2e.NewEnvBroker(t, producerBin, broker)
			e.Set("Batch.MaxRows", 64)
			e.DB.Exec(t, "CREATE DATABASE wl")
			// The first start checkpoints the server's current position;
			// the load begins after it, so every committed row is owed.
			first := e.Start()
			e2e.WaitLog(t, first, "binlog stream started")
			l := e2e.StartLoad(t, e.DB.DB(t), 3)
			time.Sleep(300 * time.Millisecond)
			first.Kill()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for i := 1; i < 20 && ctx.Err() == nil; i++ {
				p := e.Start()
				time.Sleep(time.Duration(150+rand.IntN(600)) * time.Millisecond)
				p.Kill()
			}
			committed := l.Finish()
			p := e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			total, dups := 0, 0
			for i := range committed {
				e.WaitDistinct(fmt.Sprintf("wl.t%d", i), len(committed[i]), 2*time.Minute)
			}
			if code := p.Stop(); code != 0 {
				t.Fatalf("final run exit %d:\n%s", code, p.Output())
			}
			for i := range committed {
				subject := fmt.Sprintf("wl.t%d", i)
				dups += checkDelivery(t, subject, committed[i], e.Read(subject))
				total += len(committed[i])
			}
			t.Logf("%s, 20 kills: %d rows committed, all delivered, %d duplicates stored (in-order replays)", broker, total, dups)
			if total == 0 {
				t.Fatal("the load committed nothing")
			}
			if broker == e2e.JetStream && dups != 0 {
				t.Fatalf("the JetStream stream holds %d duplicates; Nats-Msg-Id should have dropped them", dups)
			}
		})
	}
}
