package producer_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestLargeTransactionBoundedMemory streams one 200,000-row transaction and
// checks that the producer's peak RSS stays far below the transaction's size
// (about 60 MB of envelopes): rows stream through in batches instead of
// being collected per transaction.
func TestLargeTransactionBoundedMemory(t *testing.T) {
	t.Parallel()
	const rows = 200_000
	e := newEnv(t)
	e.DB.Exec(t, "CREATE DATABASE big", "CREATE TABLE big.t (id INT PRIMARY KEY, payload VARCHAR(200))")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	start := time.Now()
	e.DB.Exec(t, "INSERT INTO big.t SELECT seq, REPEAT('x', 200) FROM big.seq_1_to_200000")
	committed := time.Now()
	e.WaitFor("big.t", rows, 5*time.Minute)
	delivered := time.Now()
	peak := p.PeakRSS()
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if n := e.Count("big.t"); n != rows {
		t.Fatalf("%d messages, want exactly %d", n, rows)
	}
	t.Logf("200k-row transaction: commit took %s, delivered %s after commit (%.0f rows/s end to end including the read of the binlog), producer peak RSS %.1f MiB",
		committed.Sub(start).Round(time.Millisecond), delivered.Sub(committed).Round(time.Millisecond),
		rows/delivered.Sub(committed).Seconds(), float64(peak)/(1<<20))
	const limit = 150 << 20
	if peak <= 0 || peak > limit {
		t.Fatalf("peak RSS %d bytes, want at most %d", peak, limit)
	}
}

// TestLargeRowsBoundedMemory streams 200 rows of 4 MiB each (a LONGBLOB,
// about 5.6 MB of base64 per envelope; the broker's max_payload raised to
// 8 MiB): the read-ahead, the batch being filled and the batches in flight
// share Memory.Budget (32 MiB here), so the producer's peak RSS stays under
// the budget plus a fixed overhead (go-mysql's parsed read-ahead of
// binlog.DefaultEventBuffer events, the event being encoded, the runtime)
// instead of growing with the backlog.
func TestLargeRowsBoundedMemory(t *testing.T) {
	t.Parallel()
	const (
		rows     = 200
		rowBytes = 4 << 20
		budget   = 32 << 20
		// overhead is what the budget does not cover: up to
		// binlog.DefaultEventBuffer (16) parsed rows events read ahead by
		// go-mysql (4 MiB each here: 64 MiB), the row being decoded and
		// encoded (its raw event, the decoded value and the base64
		// envelope), the NATS client's write buffer, and the Go runtime's
		// GC headroom (GOGC=100, no GOMEMLIMIT in this test).
		overhead = 200 << 20
	)
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	e.StopBroker()
	e.NATS = testenv.StartNATSWith(t, testenv.NATSOptions{MaxPayload: 8 << 20})
	e.Set("JetStream.URL", e.NATS.URL())
	e.Set("Memory", map[string]any{"Budget": budget})
	e.Set("Batch", map[string]any{"MaxBytes": 8 << 20})
	e.DB.Exec(t, "CREATE DATABASE big", "CREATE TABLE big.blobs (id INT PRIMARY KEY, b LONGBLOB)")
	// The rows wait in the binlog while the producer is down, so it
	// catches up on all of them at once: without a byte budget every stage
	// would fill with them.
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	for i := 1; i <= rows; i++ {
		e.DB.Exec(t, "INSERT INTO big.blobs VALUES ("+strconv.Itoa(i)+", REPEAT('b', "+strconv.Itoa(rowBytes)+"))")
	}
	start := time.Now()
	p = e.Start()
	e.WaitFor("big.blobs", rows, 5*time.Minute)
	took := time.Since(start)
	peak := p.PeakRSS()
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	t.Logf("%d rows of %d MiB: delivered in %s; producer peak RSS %.1f MiB (budget %d MiB + overhead %d MiB = limit %d MiB)",
		rows, rowBytes>>20, took.Round(time.Millisecond), float64(peak)/(1<<20), budget>>20, overhead>>20, (budget+overhead)>>20)
	if peak <= 0 || peak > budget+overhead {
		t.Fatalf("peak RSS %.1f MiB, want at most %d MiB", float64(peak)/(1<<20), (budget+overhead)>>20)
	}
}
