package storage_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/storage/storagetest"
	"github.com/dbsync/dbsync/test/testenv"
)

func openNATS(t *testing.T, n *testenv.NATS, key string) *storage.NATSStore {
	t.Helper()
	s, err := storage.OpenNATS(t.Context(), storage.NATSOptions{URL: n.URL(), Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNATSKeepsTheContract(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t)
	storagetest.Run(t, func(t *testing.T, name string) storage.PositionStorager { return openNATS(t, n, name) })
}

func TestNATSKeepsTheLeaseContract(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t)
	storagetest.RunLeaser(t, func(t *testing.T, name string) storage.PositionStorager { return openNATS(t, n, name) },
		func(t *testing.T, name string) {
			// The lease's entry expires, as after its holder froze.
			js, err := jetstream.New(n.Conn(t))
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(t.Context(), storage.DefaultNATSBucket+"_LEASE")
			if err != nil {
				t.Fatal(err)
			}
			if err := kv.Purge(t.Context(), name); err != nil {
				t.Fatal(err)
			}
		})
}

// TestNATSCompareAndSet: two stores on one key without leases (two admin
// commands): a Save made on a stale view of the checkpoint is refused,
// naming that another process wrote it, and the newer checkpoint stays.
func TestNATSCompareAndSet(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t)
	ctx := t.Context()
	a, b := openNATS(t, n, "cas"), openNATS(t, n, "cas")
	defer a.Close()
	defer b.Close()
	first := position.Position{File: "mysql-bin.000001", Pos: 100}
	if err := a.Save(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx); err != nil {
		t.Fatal(err)
	}
	newer := position.Position{File: "mysql-bin.000001", Pos: 200}
	if err := b.Save(ctx, newer); err != nil {
		t.Fatal(err)
	}
	err := a.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 150})
	if !errors.Is(err, storage.ErrLeaseLost) || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "written by another process") {
		t.Fatalf("a Save on a stale view: %v, want a permanent ErrLeaseLost", err)
	}
	if got, err := a.Get(ctx); err != nil || got != newer {
		t.Fatalf("checkpoint %v, %v; want the newer %v", got, err, newer)
	}
	// Having read it again, a writes on.
	if err := a.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 300}); err != nil {
		t.Fatalf("Save after reading the current checkpoint: %v", err)
	}
}

// TestNATSServerRestart: the checkpoint survives the NATS server's
// restart (file storage), and the store works on once it is back; while
// it is down, a read fails with ErrUnavailable naming the store.
func TestNATSServerRestart(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t)
	s, err := storage.OpenNATS(t.Context(), storage.NATSOptions{URL: n.URL(), ConnectTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	saved := position.Position{File: "mysql-bin.000003", Pos: 4, GTID: "0-1-9", History: "abcdef012345"}
	if err := s.Save(t.Context(), saved); err != nil {
		t.Fatal(err)
	}
	n.Shutdown(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	_, err = s.Get(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "NATS key-value store") {
		t.Errorf("Get while the server is down: %v", err)
	}
	n.Restart(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := s.Get(t.Context())
		if err == nil {
			if got != saved {
				t.Fatalf("after the restart: %v, want %v", got, saved)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint 30s after the restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.Save(t.Context(), position.Position{File: "mysql-bin.000003", Pos: 500}); err != nil {
		t.Fatalf("Save after the restart: %v", err)
	}
}
