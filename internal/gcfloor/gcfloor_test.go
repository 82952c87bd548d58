package gcfloor

import (
	"math"
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
		{"small heap grows to the floor", 16 * mib, 0, 64 * mib, 100, 300},
		{"roots count as scanned memory", 12 * mib, 4 * mib, 64 * mib, 100, 325},
		{"a tiny heap is capped at maxPercent", 4 * mib, 0, 64 * mib, 100, maxPercent},
		{"live heap above half the floor keeps the base", 40 * mib, 0, 64 * mib, 100, 100},
		{"live heap at the floor keeps the base", 64 * mib, 0, 64 * mib, 100, 100},
		{"live heap above the floor keeps the base", 500 * mib, 1 * mib, 64 * mib, 100, 100},
		{"a higher base is kept", 20 * mib, 0, 64 * mib, 400, 400},
		{"nothing scanned yet", 0, 0, 64 * mib, 100, maxPercent},
		{"a small floor caps where the runtime's minimum heap reaches it", 0, 0, 8 * mib, 100, 200},
		{"a base above the cap wins", 1024, 0, 64 * mib, 5000, 5000},
	} {
		if got := Percent(tc.live, tc.roots, tc.floor, tc.base); got != tc.want {
			t.Errorf("%s: Percent(%d, %d, %d, %d) = %d, want %d", tc.name, tc.live, tc.roots, tc.floor, tc.base, got, tc.want)
		}
	}
}

// heapGoal returns the runtime's heap goal for the next collection.
func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
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

// hold allocates n MiB that stay live until runtime.KeepAlive.
func hold(n int) [][]byte {
	live := make([][]byte, 0, n)
	for range n {
		live = append(live, make([]byte, mib))
	}
	return live
}

// TestTunerSetsTheGoalToTheFloor holds 16 MiB live with a 48 MiB floor: at
// GOGC=100 the runtime's goal is about 32 MiB, with the tuner it must be
// about the floor; after Stop the percent is the base and stays there.
func TestTunerSetsTheGoalToTheFloor(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	live := hold(16)
	runtime.GC()
	without := heapGoal()

	tuner := Start(48*mib, 100)
	defer tuner.Stop()
	collect(t, tuner)
	with := heapGoal()
	t.Logf("16 MiB live: heap goal %d MiB at GOGC=100, %d MiB with a 48 MiB floor", without/mib, with/mib)
	if with < 44*mib || with > 52*mib {
		t.Errorf("heap goal %d MiB with a 48 MiB floor, want about 48 MiB", with/mib)
	}
	if without > 40*mib {
		t.Errorf("heap goal %d MiB at GOGC=100 with 16 MiB live: the test does not show the floor", without/mib)
	}

	tuner.Stop()
	tunes := tuner.Tunes()
	runtime.GC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // time for a (wrong) late cleanup
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after Stop the GC percent is %d, want the base 100", got)
	}
	if tuner.Tunes() != tunes {
		t.Errorf("the tuner tuned %d times after Stop", tuner.Tunes()-tunes)
	}
	runtime.KeepAlive(live)
}

// TestTunerCapsThePercent holds almost nothing live: the goal must stay at
// 1+maxPercent/100 times the live heap rather than reach the floor, so a
// burst of live data before the next tune cannot grow the heap further.
func TestTunerCapsThePercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	live := hold(8)
	tuner := Start(256*mib, 100)
	defer tuner.Stop()
	collect(t, tuner)
	if got := debug.SetGCPercent(maxPercent); got != maxPercent {
		t.Errorf("with 8 MiB live and a 256 MiB floor the GC percent is %d, want the cap %d", got, maxPercent)
	}
	if goal := heapGoal(); goal > 64*mib {
		t.Errorf("heap goal %d MiB with 8 MiB live, want at most about 5 times the live heap", goal/mib)
	}
	runtime.KeepAlive(live)
}

// TestTunerKeepsALargeLiveHeapAtTheBase holds a live heap above the floor:
// the tuner must leave the base percent.
func TestTunerKeepsALargeLiveHeapAtTheBase(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	live := hold(96)
	tuner := Start(64*mib, 100)
	defer tuner.Stop()
	collect(t, tuner)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with 96 MiB live and a 64 MiB floor the GC percent is %d, want 100", got)
	}
	runtime.KeepAlive(live)
}

func TestChoose(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	const noLimit = math.MaxInt64
	for _, tc := range []struct {
		name      string
		getenv    func(string) string
		memLimit  int64
		unlimited uint64
		want      uint64
	}{
		{"no limit: the process's own floor", env(nil), noLimit, 256 * mib, 256 * mib},
		{"a limit: a quarter of it", env(nil), 460 * mib, 256 * mib, 115 * mib},
		{"a small limit: at least Default", env(nil), 80 * mib, Default, Default},
		{"a tiny limit: at most half of it", env(nil), 24 * mib, Default, 12 * mib},
		{"the operator's GOGC turns it off", env(map[string]string{"GOGC": "200"}), 460 * mib, Default, 0},
		{"GOGC=off turns it off", env(map[string]string{"GOGC": "off"}), noLimit, Default, 0},
	} {
		if got := Choose(tc.getenv, tc.memLimit, tc.unlimited); got != tc.want {
			t.Errorf("%s: Choose = %d MiB, want %d MiB", tc.name, got/mib, tc.want/mib)
		}
	}
}
