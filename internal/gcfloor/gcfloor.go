// Package gcfloor lets a process's heap grow towards a floor before the
// garbage collector runs, instead of collecting every time the heap
// doubles.
//
// A streaming process such as the producer keeps a small live heap (a few
// MiB) and allocates hundreds of MB per second: at GOGC=100 the collector
// then runs dozens of times a second and takes a fifth of the CPU.
//
// After every collection, Tuner sets the GC percent so that the runtime's
// heap goal for the next collection is the floor, or what the base percent
// gives when that is more. The percent is never above maxPercent: the tune
// runs a little after each collection, so the runtime computes the next
// goal with the percent the previous live heap chose, and a burst of live
// data can then grow the heap to at most 1+maxPercent/100 times the live
// heap, as GOGC=400 would. A memory limit (GOMEMLIMIT) still makes the
// collector run at the limit.
package gcfloor

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Default is the floor of a process without a memory limit whose live heap
// is a few MiB: the producer's or the sync's. 32 MiB keeps the producer's
// peak RSS for a 1,000,000-row transaction where it was at GOGC=100 (68
// MiB, go run ./cmd/bench); 64 MiB raised it to 90 MiB.
const Default = 32 << 20

// Choose returns the floor for this process, 0 for no tuning: an
// operator's GOGC (getenv("GOGC") not empty) turns it off; under a memory
// limit (memLimit, the runtime's, math.MaxInt64 for none) it is a quarter
// of the limit, at least Default but at most half the limit; without one
// it is unlimited.
func Choose(getenv func(string) string, memLimit int64, unlimited uint64) uint64 {
	switch {
	case getenv("GOGC") != "":
		return 0
	case Limited(memLimit):
		limit := uint64(memLimit)
		return min(max(Default, limit/4), limit/2)
	}
	return unlimited
}

// Limited reports whether memLimit (debug.SetMemoryLimit(-1)) is a memory
// limit the operator set.
func Limited(memLimit int64) bool { return memLimit > 0 && memLimit < math.MaxInt64 }

// maxPercent bounds the GC percent the tuner sets (see the package doc).
const maxPercent = 400

// runtimeHeapMinimum is the Go runtime's smallest heap goal at GOGC=100 (4
// MiB); the runtime scales it with the GC percent, so a percent p never
// lets a collection start below runtimeHeapMinimum × p/100.
const runtimeHeapMinimum = 4 << 20

// Tuner adjusts the GC percent after every garbage collection until Stop.
type Tuner struct {
	floor uint64
	base  int
	// mu orders tune against Stop, so that no tune sets a percent after
	// Stop restored the base.
	mu      sync.Mutex
	stopped atomic.Bool
	// tunes counts adjustments (for tests and logs).
	tunes atomic.Int64
	// samples is reused by every read of the runtime's metrics, under mu.
	samples []metrics.Sample
}

// Start begins tuning: the heap may grow towards floor bytes before a
// collection, and the GC percent never goes below base (the percent the
// process runs with, e.g. 100). It panics when floor is 0 or base is not
// positive: tuning a process with the collector off makes no sense.
func Start(floor uint64, base int) *Tuner {
	if floor == 0 || base <= 0 {
		panic("gcfloor: Start needs a positive floor and base percent")
	}
	t := &Tuner{floor: floor, base: base, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.tune()
	t.arm()
	return t
}

// Stop ends the tuning and sets the GC percent to the base (not to what
// the process had before Start).
func (t *Tuner) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.CompareAndSwap(false, true) {
		debug.SetGCPercent(t.base)
	}
}

// Tunes returns how many times the tuner set the GC percent.
func (t *Tuner) Tunes() int64 { return t.tunes.Load() }

// sentinel is an object the tuner drops at once: its cleanup runs after
// the collection that found it unreachable, that is once per collection.
// It holds a pointer so the runtime never batches it with other tiny
// objects (a batched object's cleanup may never run).
type sentinel struct {
	_ *Tuner
	_ [8]byte
}

// arm registers a cleanup on a fresh sentinel that tunes and re-arms.
func (t *Tuner) arm() {
	runtime.AddCleanup(&sentinel{}, func(t *Tuner) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	}, t)
}

// tune sets the GC percent for the heap the last collection left.
func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.samples)
	live, stacks, globals := t.samples[0].Value.Uint64(), t.samples[1].Value.Uint64(), t.samples[2].Value.Uint64()
	debug.SetGCPercent(Percent(live, stacks+globals, t.floor, t.base))
	t.tunes.Add(1)
}

// Percent returns the GC percent at which the runtime's goal for the next
// collection is floor bytes, given the live heap and the other memory the
// collector scans (stacks and globals): the goal is live + (live+roots) ×
// percent/100, and at least runtimeHeapMinimum × percent/100. The result
// is at least base and at most max(base, maxPercent), and never makes the
// runtime's minimum heap exceed the floor.
func Percent(live, roots, floor uint64, base int) int {
	if live >= floor {
		return base
	}
	p := min(uint64(maxPercent), floor*100/runtimeHeapMinimum)
	if scanned := live + roots; scanned > 0 {
		p = min(p, (floor-live)*100/scanned)
	}
	return max(base, int(p))
}
