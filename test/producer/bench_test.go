package producer_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
)

// BenchmarkBulkInsert measures end-to-end throughput per broker: 200,000
// rows written beforehand as 200 multi-row INSERTs of 1,000 rows, then the
// producer starts and the clock runs until the broker acknowledged (stored)
// all of them, checkpoints on.
//
//	go test ./pkg/producer -run '^$' -bench BulkInsert -benchtime 1x -count 3
func BenchmarkBulkInsert(b *testing.B) {
	for _, broker := range []string{e2e.Stan, e2e.JetStream} {
		b.Run(broker, func(b *testing.B) { benchBulkInsert(b, broker) })
	}
}

func benchBulkInsert(b *testing.B, broker string) {
	const rows, perInsert = 200_000, 1_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := e2e.NewEnvBroker(b, producerBin, broker)
		e.DB.Exec(b, "CREATE DATABASE bench", "CREATE TABLE bench.t (id INT PRIMARY KEY, name VARCHAR(64), qty INT, price DECIMAL(10,2), at DATETIME(6))")
		p := e.Start()
		e2e.WaitLog(b, p, "binlog stream started")
		if code := p.Stop(); code != 0 {
			b.Fatalf("exit %d:\n%s", code, p.Output())
		}
		for k := 0; k < rows; k += perInsert {
			e.DB.Exec(b, fmt.Sprintf("INSERT INTO bench.t SELECT seq, CONCAT('item-', seq), seq %% 100, seq / 100, NOW(6) FROM bench.seq_%d_to_%d", k+1, k+perInsert))
		}
		b.StartTimer()
		start := time.Now()
		p = e.Start()
		e.WaitFor("bench.t", rows, 5*time.Minute)
		elapsed := time.Since(start)
		b.StopTimer()
		peak := p.PeakRSS()
		p.Stop()
		b.ReportMetric(rows/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(peak)/(1<<20), "peakRSS-MiB")
	}
}

// BenchmarkCommitLatency measures commit-to-delivery latency: 2,000
// single-row commits at about 500 commits/s; the clock runs from COMMIT
// returning in the writer to the message arriving at a NATS Streaming
// subscriber.
//
//	go test ./pkg/producer -run '^$' -bench CommitLatency -benchtime 1x -count 3
func BenchmarkCommitLatency(b *testing.B) {
	const commits, interval = 2_000, 2 * time.Millisecond
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b)
		e.DB.Exec(b, "CREATE DATABASE lat", "CREATE TABLE lat.t (id INT PRIMARY KEY, note VARCHAR(32))")
		p := e.Start()
		e2e.WaitLog(b, p, "binlog stream started")

		var mu sync.Mutex
		received := make(map[int64]time.Time, commits)
		done := make(chan struct{})
		sc := e.Stan.Conn(b, "")
		sub, err := sc.Subscribe("lat.t", func(m *stan.Msg) {
			now := time.Now()
			env, err := envelope.Decode(m.Data)
			if err != nil {
				b.Error(err)
				return
			}
			id := e2e.IntField(b, env.After, "id")
			mu.Lock()
			received[id] = now
			if len(received) == commits {
				close(done)
			}
			mu.Unlock()
		})
		if err != nil {
			b.Fatal(err)
		}
		db := e.DB.DB(b)
		committed := make([]time.Time, commits)
		b.StartTimer()
		next := time.Now()
		for k := 0; k < commits; k++ {
			if _, err := db.Exec("INSERT INTO lat.t VALUES (?, 'x')", k); err != nil {
				b.Fatal(err)
			}
			committed[k] = time.Now()
			next = next.Add(interval)
			time.Sleep(time.Until(next))
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatalf("received %d of %d", len(received), commits)
		}
		b.StopTimer()
		_ = sub.Unsubscribe()
		p.Stop()
		lat := make([]time.Duration, commits)
		for k := range lat {
			lat[k] = received[int64(k)].Sub(committed[k])
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[commits/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[commits*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[commits-1].Microseconds())/1000, "max-ms")
	}
}
