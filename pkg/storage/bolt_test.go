package storage

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
)

func newBoltKit(t *testing.T) kit {
	path := filepath.Join(t.TempDir(), "state", "dbsync.db")
	return kit{
		name:  "bolt",
		names: []string{path, `bucket "pos"`, `key "key"`},
		open: func(t *testing.T) PositionStorager {
			return openBoltT(t, BoltOptions{Path: path})
		},
	}
}

func openBoltT(t *testing.T, opts BoltOptions) *BoltStore {
	t.Helper()
	s, err := OpenBolt(opts, testLogger(t))
	if err != nil {
		t.Fatalf("OpenBolt(%+v): %v", opts, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// writeRaw puts val at bucket/key of the bolt file at path with bbolt itself.
func writeRaw(t *testing.T, path, bucket, key string, val []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), val)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBoltCreatesDirectoryAndUsesDefaults(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "a", "b", "c", "pos.db")
	s := openBoltT(t, BoltOptions{Path: path})
	if s.Path() != path {
		t.Errorf("Path() = %q", s.Path())
	}
	want := position.Position{File: "mysql-bin.000002", Pos: 1234, GTID: "0-1-42"}
	before := time.Now()
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// The value sits at the default bucket "pos", key "key", in the documented format.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var raw []byte
	_ = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("pos")); b != nil {
			raw = append([]byte(nil), b.Get([]byte("key"))...)
		}
		return nil
	})
	if raw == nil {
		t.Fatalf("no value at bucket pos, key key")
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("stored value %s is not JSON: %v", raw, err)
	}
	if m["file"] != want.File || m["pos"] != float64(want.Pos) || m["gtid"] != want.GTID || m["v"] != float64(1) || len(m) != 5 {
		t.Errorf("stored value %s does not match the format", raw)
	}
	savedAt, err := time.Parse(time.RFC3339Nano, m["saved_at"].(string))
	if err != nil {
		t.Fatalf("saved_at: %v", err)
	}
	if savedAt.Before(before.Add(-time.Second)) || savedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("saved_at %v is not the save time", savedAt)
	}
}

func TestBoltCustomBucketAndKey(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "pos.db")
	a := openBoltT(t, BoltOptions{Path: path, Bucket: "b1", Key: "k1"})
	if err := a.Save(ctx, position.Position{File: "f.000001", Pos: 10}); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	// A different key in the same file has no checkpoint; the error names it.
	b := openBoltT(t, BoltOptions{Path: path, Bucket: "b1", Key: "k2"})
	_, err := b.Get(ctx)
	if !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("want ErrNoCheckpoint, got %v", err)
	}
	assertContains(t, err, path, `bucket "b1"`, `key "k2"`)
	_ = b.Close()
	c := openBoltT(t, BoltOptions{Path: path, Bucket: "b1", Key: "k1"})
	if got, err := c.Get(ctx); err != nil || got.Pos != 10 {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

func TestBoltRequiresPath(t *testing.T) {
	_, err := OpenBolt(BoltOptions{}, nil)
	assertContains(t, err, "no file path")
}

func TestBoltLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pos.db")
	first := openBoltT(t, BoltOptions{Path: path})

	for _, c := range []struct {
		timeout, max time.Duration
	}{
		{300 * time.Millisecond, 2 * time.Second},
		{0, 3 * time.Second}, // default: 1s, never forever
	} {
		start := time.Now()
		s, err := OpenBolt(BoltOptions{Path: path, Timeout: c.timeout}, testLogger(t))
		took := time.Since(start)
		if err == nil {
			_ = s.Close()
			t.Fatalf("second OpenBolt (timeout %v) on a locked file succeeded", c.timeout)
		}
		if took > c.max {
			t.Errorf("second OpenBolt (timeout %v) took %v, want < %v", c.timeout, took, c.max)
		}
		if c.timeout > 0 && took < c.timeout/2 {
			t.Errorf("second OpenBolt gave up after %v, before its timeout %v", took, c.timeout)
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("locked: want ErrUnavailable, got %v", err)
		}
		assertContains(t, err, path, "locked", "another running producer")
	}

	// Once the holder closes, the file opens.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openBoltT(t, BoltOptions{Path: path, Timeout: 300 * time.Millisecond})
}

func TestBoltGarbageFile(t *testing.T) {
	// A real database with a checkpoint, to truncate.
	real := filepath.Join(t.TempDir(), "real.db")
	s := openBoltT(t, BoltOptions{Path: real})
	if err := s.Save(testCtx(t), position.Position{File: "mysql-bin.000001", Pos: 100}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	full, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	// Valid meta pages, but the root and freelist pages they point at are
	// overwritten with random bytes.
	f, err := os.Open(real)
	if err != nil {
		t.Fatal(err)
	}
	m0, ok0 := readBoltMeta(f, 0)
	m1, ok1 := readBoltMeta(f, 4096)
	_ = f.Close()
	if !ok0 || !ok1 || m0.pageSize != 4096 {
		t.Fatalf("real database has unexpected meta pages %+v %+v", m0, m1)
	}
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	scrambled := bytes.Clone(full)
	copy(scrambled[m.root*4096:], random(4096))
	scrambledFreelist := bytes.Clone(full)
	copy(scrambledFreelist[m.freelist*4096:], random(4096))

	for _, c := range []struct {
		name string
		data []byte
	}{
		{"random 64KiB", random(64 << 10)},
		{"random 100 bytes", random(100)},
		{"zeros 16KiB", make([]byte, 16<<10)},
		{"text", []byte(`{"file":"mysql-bin.000001","pos":4}` + "\n")},
		{"truncated to 1000", full[:1000]},
		{"truncated to 5000", full[:5000]},
		{"truncated to 8192", full[:8192]},
		{"truncated to 16384", full[:16384]},
		{"scrambled root page", scrambled},
		{"scrambled freelist page", scrambledFreelist},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pos.db")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenBolt(BoltOptions{Path: path, Timeout: 300 * time.Millisecond}, testLogger(t))
			if err == nil {
				// Some damage only shows when the checkpoint is read.
				t.Cleanup(func() { _ = s.Close() })
				var pos position.Position
				pos, err = s.Get(testCtx(t))
				if err == nil {
					t.Fatalf("damaged file (%s) read as checkpoint %v", c.name, pos)
				}
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("want ErrCorrupt, got %v", err)
			}
			if errors.Is(err, ErrNoCheckpoint) {
				t.Errorf("damaged file must not look like a first start: %v", err)
			}
			assertContains(t, err, path, "dbsync will not guess")
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, c.data) {
				t.Errorf("the damaged file was modified by the failed open")
			}
		})
	}
}

func TestBoltCorruptValue(t *testing.T) {
	long := `{"file":"` + strings.Repeat("x", 5000) + `"`
	for _, c := range []struct {
		name, val string
		shows     []string
	}{
		{"not json", "garbage\x00value", []string{`"garbage\x00value"`, "not a JSON checkpoint"}},
		{"empty", "", []string{`""`, "not a JSON checkpoint"}},
		{"old plain format", "mysql-bin.000001:4", []string{`"mysql-bin.000001:4"`}},
		{"unknown field", `{"file":"a.000001","pos":4,"gtid":"","saved_at":"2024-05-01T09:00:00Z","v":1,"extra":true}`, []string{`unknown field`}},
		{"invalid position", `{"file":"a.000001","pos":0,"gtid":"","saved_at":"2024-05-01T09:00:00Z","v":1}`, []string{"before the first event"}},
		{"newer version", `{"file":"a.000001","pos":4,"gtid":"","saved_at":"2024-05-01T09:00:00Z","v":9}`, []string{"version 9"}},
		{"long garbage", long, []string{"(5010 bytes)", `"{\"file\":\"xxxx`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pos.db")
			writeRaw(t, path, "mybucket", "mykey", []byte(c.val))
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s := openBoltT(t, BoltOptions{Path: path, Bucket: "mybucket", Key: "mykey"})
			_, err = s.Get(testCtx(t))
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("want ErrCorrupt, got %v", err)
			}
			if errors.Is(err, ErrNoCheckpoint) || errors.Is(err, ErrUnavailable) {
				t.Errorf("corrupt value error must be only ErrCorrupt: %v", err)
			}
			assertContains(t, err, append([]string{path, `bucket "mybucket"`, `key "mykey"`, "dbsync will not guess"}, c.shows...)...)
			if fix := failure.Fix(err); !strings.Contains(fix, "restore the checkpoint from a backup") {
				t.Errorf("fix %q does not say to restore the checkpoint", fix)
			}
			if len(err.Error()) > 1000 {
				t.Errorf("error message is %d bytes; the value must be truncated: %.200s", len(err.Error()), err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("the checkpoint file changed during the failed Get")
			}
		})
	}
}

func TestBoltPathIsDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenBolt(BoltOptions{Path: dir}, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
	assertContains(t, err, dir, "directory")
}
