package main

import (
	"math"
	"testing"

	"github.com/dbsync/dbsync/internal/gcfloor"
	"github.com/dbsync/dbsync/pkg/config"
)

func TestPlanGC(t *testing.T) {
	embedded := &config.Config{MQName: "jetstream"}
	external := &config.Config{MQName: "jetstream", JetStream: config.JetStream{URL: "nats://nats:4222"}}
	stan := &config.Config{MQName: "stan"}
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	const limit = 460 << 20
	noLimit := int64(math.MaxInt64)
	for _, tc := range []struct {
		name     string
		cfg      *config.Config
		getenv   func(string) string
		memLimit int64
		want     gcPlan
	}{
		{"embedded under a memory limit", embedded, env(nil), limit, gcPlan{Percent: embeddedGCPercent, Floor: limit / 4}},
		{"embedded under a small memory limit", embedded, env(nil), 48 << 20, gcPlan{Percent: embeddedGCPercent, Floor: 24 << 20}},
		{"embedded without a memory limit", embedded, env(nil), noLimit, gcPlan{Floor: embeddedHeapFloor}},
		{"embedded with the operator's GOGC", embedded, env(map[string]string{"GOGC": "100"}), limit, gcPlan{}},
		{"external JetStream under a memory limit", external, env(nil), limit, gcPlan{Floor: limit / 4}},
		{"NATS Streaming without a limit", stan, env(nil), noLimit, gcPlan{Floor: gcfloor.Default}},
		{"a small limit keeps the default floor", stan, env(nil), 64 << 20, gcPlan{Floor: gcfloor.Default}},
		{"a memory limit of zero is no limit", stan, env(nil), 0, gcPlan{Floor: gcfloor.Default}},
		{"the operator's GOGC=off", stan, env(map[string]string{"GOGC": "off"}), noLimit, gcPlan{}},
	} {
		if got := planGC(tc.cfg, tc.getenv, tc.memLimit); got != tc.want {
			t.Errorf("%s: planGC = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
