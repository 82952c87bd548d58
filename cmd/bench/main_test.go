package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags(defaults): %v", err)
	}
	if o.Rows != 500_000 || o.Tx != 200_000 || o.Runs != 3 || o.Rate != 1000 || o.Duration != 10*time.Second ||
		strings.Join(o.Brokers, ",") != "stan,jetstream,jetstream-embedded,kafka" || o.Out != "docs/benchmarks.md" || o.BigRows != 1_000_000 ||
		o.SyncRows != 100_000 {
		t.Errorf("defaults = %+v", o)
	}
	if o, err := parseFlags([]string{"-big=false", "-brokers", " jetstream "}, io.Discard); err != nil || o.BigRows != 0 ||
		strings.Join(o.Brokers, ",") != "jetstream" {
		t.Errorf("-big=false -brokers jetstream: %+v, %v", o, err)
	}
	if o, err := parseFlags([]string{"-sync-rows", "0"}, io.Discard); err != nil || o.SyncRows != 0 {
		t.Errorf("-sync-rows 0: %+v, %v", o, err)
	}
	_, err = parseFlags([]string{"-rows", "0", "-brokers", "rabbitmq", "-sync-rows", "-1"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-rows must be positive") || !strings.Contains(err.Error(), `unknown broker "rabbitmq"`) ||
		!strings.Contains(err.Error(), "-sync-rows must not be negative") {
		t.Errorf("parseFlags(bad values) error = %v, want every problem named", err)
	}
}
