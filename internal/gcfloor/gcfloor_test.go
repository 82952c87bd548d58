package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		name               string
		live, roots, floor uint64
		base, want         int
	}{
		{"small heap grows to the floor", 4 * mib, 0, 64 * mib, 100, 1500},
		{"roots count as scanned memory", 4 * mib, 4 * mib, 64 * mib, 100, 750},
		{"live heap above half the floor keeps the base", 40 * mib, 0, 64 * mib, 100, 100},
		{"live heap at the floor keeps the base", 64 * mib, 0, 64 * mib, 100, 100},
		{"live heap above the floor keeps the base", 500 * mib, 1 * mib, 64 * mib, 100, 100},
		{"a higher base is kept", 20 * mib, 0, 64 * mib, 400, 400},
		{"an almost empty heap is capped where the runtime's minimum heap reaches the floor", 1024, 0, 64 * mib, 100, 1600},
		{"nothing scanned yet", 0, 0, 64 * mib, 100, 1600},
		{"the cap follows the floor", 0, 0, 32 * mib, 100, 800},
		{"a base above the cap wins", 1024, 0, 64 * mib, 5000, 5000},
	} {
		if got := Percent(tc.live, tc.roots, tc.floor, tc.base); got != tc.want {
			t.Errorf("%s: Percent(%d, %d, %d, %d) = %d, want %d", tc.name, tc.live, tc.roots, tc.floor, tc.base, got, tc.want)
		}
	}
}

// gcCycles returns the number of completed collections.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

var sink []byte

// churn allocates total bytes of short-lived garbage in 4 KiB pieces and
// returns how many collections ran meanwhile.
func churn(total int) uint64 {
	before := gcCycles()
	for n := 0; n < total; n += 4096 {
		sink = make([]byte, 4096)
	}
	return gcCycles() - before
}

// TestTunerRaisesTheFloor allocates the same garbage with a small live heap
// with and without a tuner: with a 64 MiB floor the collector must run far
// less often (at GOGC=100 it runs every few MiB), and Stop must restore the
// base percent.
func TestTunerRaisesTheFloor(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	runtime.GC()
	const total = 1 << 30

	without := churn(total)

	tuner := Start(64*mib, 100)
	runtime.GC()
	with := churn(total)
	tuner.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after Stop the GC percent is %d, want the base 100", got)
	}
	t.Logf("1 GiB of garbage: %d collections at GOGC=100, %d with a 64 MiB floor (%d tunes)", without, with, tuner.Tunes())
	if with == 0 || tuner.Tunes() < 2 {
		t.Fatalf("%d collections and %d tunes with the tuner: it did not follow the collections", with, tuner.Tunes())
	}
	// 1 GiB at a 64 MiB goal is about 16 collections; at GOGC=100 with a
	// heap of a few MiB it is hundreds.
	if with*4 > without {
		t.Errorf("%d collections with a 64 MiB floor against %d without: want at most a quarter", with, without)
	}

	// Stopped: collections run as often as without a tuner again.
	tunes := tuner.Tunes()
	after := churn(total)
	if tuner.Tunes() != tunes {
		t.Errorf("the tuner tuned %d times after Stop", tuner.Tunes()-tunes)
	}
	if after*2 < without {
		t.Errorf("%d collections after Stop against %d without a tuner: the floor is still in effect", after, without)
	}
}

// collect runs a collection and waits until the tuner tuned after it.
func collect(t *testing.T, tuner *Tuner) {
	t.Helper()
	before := tuner.Tunes()
	runtime.GC()
	deadline := time.Now().Add(10 * time.Second)
	for tuner.Tunes() == before {
		if time.Now().After(deadline) {
			t.Fatal("the tuner did not tune within 10s of a collection")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTunerKeepsALargeLiveHeapAtTheBase holds a live heap above the floor:
// the tuner must leave the base percent.
func TestTunerKeepsALargeLiveHeapAtTheBase(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	live := make([][]byte, 0, 96)
	for range 96 {
		live = append(live, make([]byte, mib))
	}
	tuner := Start(64*mib, 100)
	defer tuner.Stop()
	collect(t, tuner)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with 96 MiB live and a 64 MiB floor the GC percent is %d, want 100", got)
	}
	runtime.KeepAlive(live)
}
