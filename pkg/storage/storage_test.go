package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/position"
)

// kit opens one store kind at one fixed location (file or key), so that
// reopening sees what an earlier store saved.
type kit struct {
	name string
	// open opens the store; the test's cleanup closes it.
	open func(t *testing.T) PositionStorager
	// names are substrings every Get error must contain (file/key/address).
	names []string
}

func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return l.WithField("test", t.Name())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// allKits returns a fresh location for every store kind.
func allKits(t *testing.T) []kit {
	return []kit{newBoltKit(t), newRedisKit(t)}
}

func assertContains(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got nil", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err.Error(), s)
		}
	}
}

// TestErrorsNameTheStore: the first Get's error names the file, bucket and
// key, or the address and key (the contract itself is in contract_test.go).
func TestErrorsNameTheStore(t *testing.T) {
	for _, k := range allKits(t) {
		t.Run(k.name, func(t *testing.T) {
			_, err := k.open(t).Get(testCtx(t))
			if !errors.Is(err, ErrNoCheckpoint) {
				t.Fatalf("first Get: want ErrNoCheckpoint, got %v", err)
			}
			assertContains(t, err, k.names...)
		})
	}
}

func TestDecodeCheckpointStrict(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	enc, err := encodeCheckpoint(position.Position{File: "mysql-bin.000002", Pos: 1234, GTID: "0-1-42"}, now)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"file":"mysql-bin.000002","pos":1234,"gtid":"0-1-42","saved_at":"2024-05-01T09:00:00.123456789Z","v":1}`
	if string(enc) != want {
		t.Fatalf("encoded\n %s\nwant\n %s", enc, want)
	}
	for _, c := range []struct{ val, why string }{
		{``, "not a JSON checkpoint"},
		{`nope`, "not a JSON checkpoint"},
		{`[]`, "not a JSON checkpoint"},
		{`{"file":"a.000001","pos":4,"gtid":"","saved_at":"2024-05-01T09:00:00Z","v":1,"x":1}`, "unknown field"},
		{`{"file":"a.000001","pos":4,"gtid":"","saved_at":"2024-05-01T09:00:00Z","v":1} {}`, "after the JSON object"},
		{`{"file":"a.000001","pos":4,"saved_at":"2024-05-01T09:00:00Z"}`, `"v"`},
		{`{"pos":4,"saved_at":"2024-05-01T09:00:00Z","v":1}`, `"file"`},
		{`{"file":"a.000001","saved_at":"2024-05-01T09:00:00Z","v":1}`, `"pos"`},
		{`{"file":"a.000001","pos":4,"v":1}`, `"saved_at"`},
		{`{"file":"a.000001","pos":4,"saved_at":"yesterday","v":1}`, "not a JSON checkpoint"},
		{`{"file":"a.000001","pos":-1,"saved_at":"2024-05-01T09:00:00Z","v":1}`, "not a JSON checkpoint"},
		{`{"file":"a.000001","pos":4,"saved_at":"2024-05-01T09:00:00Z","v":2}`, "unsupported format version 2"},
		{`{"file":"","pos":4,"saved_at":"2024-05-01T09:00:00Z","v":1}`, "no binlog file name"},
		{`{"file":"a.000001","pos":3,"saved_at":"2024-05-01T09:00:00Z","v":1}`, "before the first event"},
	} {
		_, err := decodeCheckpoint([]byte(c.val))
		if err == nil {
			t.Errorf("decode(%s) succeeded, want error", c.val)
			continue
		}
		if !strings.Contains(err.Error(), c.why) {
			t.Errorf("decode(%s) error %q does not contain %q", c.val, err, c.why)
		}
	}
}
