// Package gcfloor lets a process's heap grow to a floor before the garbage
// collector runs, instead of collecting every time the heap doubles.
//
// A streaming process such as the producer keeps a small live heap (a few
// MiB) and allocates hundreds of MB per second: at GOGC=100 the collector
// then runs dozens of times a second and takes a fifth of the CPU. Above
// the floor nothing changes: the heap may still grow to twice the live
// heap (the GC percent the process had), so a large live heap does not
// grow further. A memory limit (GOMEMLIMIT) still makes the collector run
// at the limit.
//
// After every collection, Tuner sets the GC percent so that the next
// collection starts when the heap reaches the floor, or at the base
// percent when that comes later. It never lowers the percent below the
// base.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// runtimeHeapMinimum is the Go runtime's smallest heap goal at GOGC=100 (4
// MiB); the runtime scales it with the GC percent, so a percent p never
// lets a collection start below runtimeHeapMinimum × p/100.
const runtimeHeapMinimum = 4 << 20

// Tuner adjusts the GC percent after every garbage collection until Stop.
type Tuner struct {
	floor   uint64
	base    int
	stopped atomic.Bool
	// tunes counts adjustments (for tests and logs).
	tunes atomic.Int64
	// samples is reused by every read of the runtime's metrics; only the
	// cleanup goroutine touches it after Start.
	samples []metrics.Sample
}

// Start begins tuning: the heap may grow to floor bytes before a
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

// Stop ends the tuning and restores the base percent.
func (t *Tuner) Stop() {
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
	metrics.Read(t.samples)
	live, stacks, globals := t.samples[0].Value.Uint64(), t.samples[1].Value.Uint64(), t.samples[2].Value.Uint64()
	if t.stopped.Load() {
		return
	}
	debug.SetGCPercent(Percent(live, stacks+globals, t.floor, t.base))
	t.tunes.Add(1)
}

// Percent returns the GC percent at which the runtime starts the next
// collection when the heap reaches floor bytes, given the live heap and the
// other memory the collector scans (stacks and globals): the runtime's goal
// is live + (live+roots) × percent/100, and at least runtimeHeapMinimum ×
// percent/100, so the percent is capped where that minimum reaches the
// floor (1,600 for 64 MiB). The result is never below base.
func Percent(live, roots, floor uint64, base int) int {
	limit := floor * 100 / runtimeHeapMinimum
	scanned := live + roots
	if live >= floor {
		return base
	}
	p := limit
	if scanned > 0 {
		p = min(p, (floor-live)*100/scanned)
	}
	return max(base, int(p))
}
