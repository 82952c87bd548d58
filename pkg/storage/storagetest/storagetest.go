// Package storagetest holds the contract every storage.PositionStorager
// keeps, as a suite an implementation runs on itself (Run), the contract of
// a store several processes share under a lease (RunLeaser: fenced saves),
// and an in-memory store (Memory) for the tests of code that keeps a
// checkpoint.
//
// A new store passes Run before anything else uses it:
//
//	func TestContract(t *testing.T) {
//		dir := t.TempDir()
//		storagetest.Run(t, func(t *testing.T, name string) storage.PositionStorager {
//			s, err := storage.OpenBolt(storage.BoltOptions{Path: filepath.Join(dir, name+".db")}, nil)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
package storagetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// Opener opens the store called name: opening the same name again (after
// the first was closed) sees what was saved under it, another name is
// another, empty store. It fails the test when the store cannot be opened.
// The suite closes what it opens.
type Opener func(t *testing.T, name string) storage.PositionStorager

// Run checks the contract of storage.PositionStorager on the stores open
// returns:
//   - a store that never saved has no checkpoint: Get fails with an error
//     wrapping storage.ErrNoCheckpoint (and not ErrCorrupt or
//     ErrUnavailable) that names the store;
//   - Save then Get returns exactly what was saved, GTID and history
//     included, and a later Save replaces it;
//   - a saved checkpoint survives closing and reopening the store;
//   - an invalid position is refused ("refusing to save") and leaves the
//     saved one as it was;
//   - Delete removes the checkpoint, and deleting none is no error;
//   - a done ctx fails Save and Get with the ctx's error and saves nothing.
func Run(t *testing.T, open Opener) {
	t.Helper()
	opened := func(t *testing.T, name string) storage.PositionStorager {
		t.Helper()
		s := open(t, name)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Run("FirstGetHasNoCheckpoint", func(t *testing.T) {
		name := uniqueName(t)
		_, err := opened(t, name).Get(testCtx(t))
		if !errors.Is(err, storage.ErrNoCheckpoint) {
			t.Fatalf("first Get: %v, want storage.ErrNoCheckpoint", err)
		}
		if errors.Is(err, storage.ErrCorrupt) || errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("first Get: %v also reads as corrupt or unavailable", err)
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("first Get: %q does not name the store %q", err, name)
		}
	})
	t.Run("SaveGetRoundTrip", func(t *testing.T) {
		ctx, s := testCtx(t), opened(t, uniqueName(t))
		for _, want := range []position.Position{
			{File: "mysql-bin.000001", Pos: 4},
			{File: "mysql-bin.000002", Pos: 1234, GTID: "0-1-42", History: "3f9a0c12b7d4"},
			{File: "binlog.000010", Pos: 4294967295, GTID: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-23"},
			{File: "mysql-bin.000003", Pos: 98}, // GTID and history cleared again
		} {
			if err := s.Save(ctx, want); err != nil {
				t.Fatalf("Save(%v): %v", want, err)
			}
			got, err := s.Get(ctx)
			if err != nil {
				t.Fatalf("Get after Save(%v): %v", want, err)
			}
			if got != want {
				t.Fatalf("Get = %#v, want %#v", got, want)
			}
		}
	})
	t.Run("SaveSurvivesReopen", func(t *testing.T) {
		ctx, name := testCtx(t), uniqueName(t)
		want := position.Position{File: "mysql-bin.000007", Pos: 777, GTID: "0-1-7", History: "a1b2c3d4e5f6"}
		s := open(t, name)
		if err := s.Save(ctx, want); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		got, err := opened(t, name).Get(ctx)
		if err != nil || got != want {
			t.Fatalf("Get after reopen = %#v, %v; want %#v", got, err, want)
		}
	})
	t.Run("RefusesInvalidPosition", func(t *testing.T) {
		ctx, s := testCtx(t), opened(t, uniqueName(t))
		good := position.Position{File: "mysql-bin.000002", Pos: 500}
		if err := s.Save(ctx, good); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []position.Position{{}, {File: "mysql-bin.000002", Pos: 3}, {Pos: 100}} {
			err := s.Save(ctx, bad)
			if err == nil || !strings.Contains(err.Error(), "refusing to save") {
				t.Fatalf("Save(%#v) = %v, want a refusal", bad, err)
			}
		}
		if got, err := s.Get(ctx); err != nil || got != good {
			t.Fatalf("after refused saves Get = %v, %v; want %v", got, err, good)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		ctx, s := testCtx(t), opened(t, uniqueName(t))
		if err := s.Delete(ctx); err != nil {
			t.Fatalf("Delete with no checkpoint: %v", err)
		}
		if err := s.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 4}); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Get(ctx); !errors.Is(err, storage.ErrNoCheckpoint) {
			t.Fatalf("Get after Delete: %v, want storage.ErrNoCheckpoint", err)
		}
	})
	t.Run("DoneContext", func(t *testing.T) {
		s := opened(t, uniqueName(t))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 4}); !errors.Is(err, context.Canceled) {
			t.Errorf("Save with a done ctx: %v, want context.Canceled", err)
		}
		if _, err := s.Get(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a done ctx: %v, want context.Canceled", err)
		}
		if _, err := s.Get(testCtx(t)); !errors.Is(err, storage.ErrNoCheckpoint) {
			t.Errorf("Get after a Save with a done ctx: %v, want storage.ErrNoCheckpoint", err)
		}
	})
}

// uniqueName is a store name of its own for the running test.
func uniqueName(t *testing.T) string {
	r := strings.NewReplacer("/", "-", " ", "-")
	return "st-" + r.Replace(t.Name()) + "-" + time.Now().Format("150405.000000000")
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
