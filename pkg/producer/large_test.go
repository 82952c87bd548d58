package producer_test

import (
	"testing"
	"time"

	"github.com/dbsync/dbsync/internal/e2e"
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
