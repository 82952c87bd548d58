package main

import (
	"testing"

	"github.com/dbsync/dbsync/pkg/config"
)

func TestGCPercent(t *testing.T) {
	embedded := &config.Config{MQName: "jetstream"}
	external := &config.Config{MQName: "jetstream", JetStream: config.JetStream{URL: "nats://nats:4222"}}
	stan := &config.Config{MQName: "stan"}
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	limited := env(map[string]string{"GOMEMLIMIT": "460MiB"})
	for _, tc := range []struct {
		name   string
		cfg    *config.Config
		getenv func(string) string
		want   bool
	}{
		{"embedded under a memory limit", embedded, limited, true},
		{"embedded without a memory limit", embedded, env(nil), false},
		{"embedded with the operator's GOGC", embedded, env(map[string]string{"GOMEMLIMIT": "460MiB", "GOGC": "100"}), false},
		{"external JetStream", external, limited, false},
		{"NATS Streaming", stan, limited, false},
	} {
		got, ok := gcPercent(tc.cfg, tc.getenv)
		if ok != tc.want || (ok && got != embeddedGCPercent) {
			t.Errorf("%s: gcPercent = %d, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}
