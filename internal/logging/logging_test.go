package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestSlogBridge: go-mysql's slog records reach logrus with their attributes
// as fields, at the matching level, and a value JSON cannot encode (a func)
// is written as text instead of breaking the line.
func TestSlogBridge(t *testing.T) {
	var out bytes.Buffer
	log, err := New("debug", "json", &out)
	if err != nil {
		t.Fatal(err)
	}
	s := Slog(log.WithField("checkpoint", "mysql-bin.000001:4"))
	s.Warn("rotate", "file", "mysql-bin.000002", "pos", 4, "cfg", struct{ F func() }{})
	var entry map[string]any
	if err := json.Unmarshal(out.Bytes(), &entry); err != nil {
		t.Fatalf("not JSON: %q: %v", out.String(), err)
	}
	if entry["level"] != "warning" || entry["msg"] != "rotate" || entry["file"] != "mysql-bin.000002" ||
		entry["pos"] != float64(4) || entry["checkpoint"] != "mysql-bin.000001:4" || entry["component"] != "go-mysql" {
		t.Errorf("entry %v", entry)
	}
	if cfg, _ := entry["cfg"].(string); !strings.Contains(cfg, "F:") {
		t.Errorf("cfg rendered as %v", entry["cfg"])
	}
	if _, err := New("loud", "text", &out); err == nil {
		t.Error("an unknown level was accepted")
	}
	if _, err := New("info", "xml", &out); err == nil {
		t.Error("an unknown format was accepted")
	}
}
