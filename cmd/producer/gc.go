package main

import (
	"github.com/dbsync/dbsync/internal/gcfloor"
	"github.com/dbsync/dbsync/pkg/config"
)

// embeddedGCPercent is the garbage collector's target (GOGC) of a producer
// that runs the embedded NATS server under a memory limit. The server
// shares the process's heap and collector, and at the default of 100 the
// producer's garbage makes the collector run often: bulk inserts end to
// end went from 58,757 to 69,937 rows/s at 400 (go run ./cmd/bench
// -brokers jetstream-embedded, medians of 3, 2 cores), the heap twice as
// large. The memory limit still bounds the heap.
const embeddedGCPercent = 400

// embeddedHeapFloor is the heap floor of a producer that runs the embedded
// NATS server without a memory limit. The server keeps a large live heap
// (the stream's de-duplication ids, its block caches) in the process's
// collector, so the producer's garbage made the collector scan it often.
// With this floor (go run ./cmd/bench -brokers jetstream-embedded, 2
// cores, 4 runs against 4 at GOGC=100): bulk inserts end to end 116-120k
// rows/s instead of 94-114k, single-row transactions 86-90k instead of
// 66-82k; peak RSS 292-302 MiB instead of 233-251 (bulk) and 241-264
// instead of 117-127 (transactions).
const embeddedHeapFloor = 256 << 20

// gcPlan is how the producer's garbage collector is tuned.
type gcPlan struct {
	// Percent is the GC percent to run with (GOGC); 0 keeps the runtime's.
	Percent int
	// Floor is the heap goal the tuner keeps the collector at while the
	// live heap is small (internal/gcfloor); 0 turns the tuner off.
	Floor uint64
}

// planGC returns the tuning of the producer's collector. An operator's GOGC
// turns all of it off. Otherwise the heap may grow towards a floor before a
// collection (gcfloor.Choose): under a memory limit (GOMEMLIMIT, as the
// Kubernetes manifests set; memLimit is the runtime's limit, math.MaxInt64
// when none) a quarter of it, at least gcfloor.Default and at most half
// the limit; without one gcfloor.Default, or embeddedHeapFloor with the
// embedded NATS server.
// The embedded server under a memory limit also raises the GC percent to
// embeddedGCPercent: the server shares the heap, and the limit bounds it.
func planGC(cfg *config.Config, getenv func(string) string, memLimit int64) gcPlan {
	embedded := cfg.MQName == "jetstream" && cfg.JetStream.URL == ""
	unlimited := uint64(gcfloor.Default)
	if embedded {
		unlimited = embeddedHeapFloor
	}
	plan := gcPlan{Floor: gcfloor.Choose(getenv, memLimit, unlimited)}
	if plan.Floor > 0 && embedded && gcfloor.Limited(memLimit) {
		plan.Percent = embeddedGCPercent
	}
	return plan
}
