package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/dbsync/dbsync/pkg/config"
)

// TestSnapshotCommandReachesTheListener: the snapshot commands call the
// operations listener on this host's loopback address, which is where
// the handler accepts them; in deploy/base's pod (kubectl exec) too.
func TestSnapshotCommandReachesTheListener(t *testing.T) {
	for listen, want := range map[string]string{
		":8080":          "http://127.0.0.1:8080/",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/",
		"[::]:9000":      "http://127.0.0.1:9000/",
		"127.0.0.1:8081": "http://127.0.0.1:8081/",
		"[::1]:8081":     "http://[::1]:8081/",
	} {
		got, err := localURL(listen)
		if err != nil || got != want {
			t.Errorf("localURL(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := localURL("8080"); err == nil {
		t.Error("a listen address without a port was accepted")
	}
	// deploy/base's config (its secret files exist only in the pod: read
	// the HTTP section alone).
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "base", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ HTTP config.HTTP }
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Disabled {
		t.Fatal("deploy/base turns the operations listener off: the snapshot commands could not reach the producer")
	}
	if u, err := localURL(cfg.HTTP.Listen); err != nil || u != "http://127.0.0.1:8080/" {
		t.Errorf("deploy/base's HTTP.Listen %q gives %q, %v", cfg.HTTP.Listen, u, err)
	}
}
