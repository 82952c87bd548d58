package main

import "github.com/dbsync/dbsync/pkg/config"

// embeddedGCPercent is the garbage collector's target (GOGC) of a producer
// that runs the embedded NATS server under a memory limit. The server
// shares the process's heap and collector, and at the default of 100 the
// producer's garbage makes the collector run often: bulk inserts end to
// end went from 58,757 to 69,937 rows/s at 400 (go run ./cmd/bench
// -brokers jetstream-embedded, medians of 3, 2 cores), the heap twice as
// large. The memory limit still bounds the heap.
const embeddedGCPercent = 400

// gcPercent returns the GOGC to set, and true, when the process runs the
// embedded NATS server (JetStream without a URL), a memory limit is set
// (GOMEMLIMIT, as the Kubernetes manifests do) and GOGC is not: without a
// limit a larger target could grow the heap past what the host allows, and
// an operator's own GOGC is kept.
func gcPercent(cfg *config.Config, getenv func(string) string) (int, bool) {
	embedded := cfg.MQName == "jetstream" && cfg.JetStream.URL == ""
	if !embedded || getenv("GOMEMLIMIT") == "" || getenv("GOGC") != "" {
		return 0, false
	}
	return embeddedGCPercent, true
}
