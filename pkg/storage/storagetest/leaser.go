package storagetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// Lapse makes the lease on the store called name lapse, as its expiry
// would after its holder froze: nobody holds it afterwards.
type Lapse func(t *testing.T, name string)

// RunLeaser checks the contract of storage.Leaser and storage.Lease on the
// stores open returns (each must implement storage.Leaser; two opens of
// one name are two processes on one checkpoint):
//   - while one holds the lease, another can neither take it (ErrHeld,
//     naming the holder) nor save or delete without one;
//   - once the lease lapsed and another took it and saved, the old
//     holder's Save and Delete fail with a permanent ErrLeaseLost that
//     carries a fix and names the new holder, its Lost closes, its Err
//     says so, and the checkpoint keeps the new holder's value;
//   - Release gives the lease back: another takes it, and Release again
//     does nothing.
func RunLeaser(t *testing.T, open Opener, lapse Lapse) {
	t.Helper()
	opened := func(t *testing.T, name string) (storage.PositionStorager, storage.Leaser) {
		t.Helper()
		s := open(t, name)
		t.Cleanup(func() { _ = s.Close() })
		l, ok := s.(storage.Leaser)
		if !ok {
			t.Fatalf("%T is no storage.Leaser", s)
		}
		return s, l
	}
	acquire := func(t *testing.T, l storage.Leaser, owner string) storage.Lease {
		t.Helper()
		lease, err := l.AcquireLease(testCtx(t), owner, time.Minute)
		if err != nil {
			t.Fatalf("AcquireLease(%s): %v", owner, err)
		}
		t.Cleanup(lease.Release)
		if lease.Owner() != owner {
			t.Errorf("Owner() = %q, want %q", lease.Owner(), owner)
		}
		if err := lease.Err(); err != nil {
			t.Errorf("Err of a fresh lease: %v", err)
		}
		return lease
	}
	t.Run("HeldExcludesOthers", func(t *testing.T) {
		ctx, name := testCtx(t), uniqueName(t)
		a, al := opened(t, name)
		b, bl := opened(t, name)
		acquire(t, al, "owner-a #1")
		saved := position.Position{File: "mysql-bin.000001", Pos: 100}
		if err := a.Save(ctx, saved); err != nil {
			t.Fatalf("holder's Save: %v", err)
		}
		if _, err := bl.AcquireLease(ctx, "owner-b #2", time.Minute); !errors.Is(err, storage.ErrHeld) || !strings.Contains(err.Error(), "owner-a #1") {
			t.Errorf("AcquireLease while held: %v, want ErrHeld naming owner-a #1", err)
		}
		if err := b.Save(ctx, position.Position{File: "mysql-bin.000009", Pos: 9}); err == nil {
			t.Error("a Save without the lease succeeded while another holds it")
		}
		if err := b.Delete(ctx); err == nil {
			t.Error("a Delete without the lease succeeded while another holds it")
		}
		if got, err := a.Get(ctx); err != nil || got != saved {
			t.Errorf("checkpoint = %v, %v; want the holder's %v", got, err, saved)
		}
	})
	t.Run("LostLeaseFencesSaves", func(t *testing.T) {
		ctx, name := testCtx(t), uniqueName(t)
		a, al := opened(t, name)
		b, bl := opened(t, name)
		la := acquire(t, al, "owner-a #1")
		if err := a.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 100}); err != nil {
			t.Fatal(err)
		}
		lapse(t, name)
		acquire(t, bl, "owner-b #2")
		want := position.Position{File: "mysql-bin.000002", Pos: 200}
		if err := b.Save(ctx, want); err != nil {
			t.Fatalf("new holder's Save: %v", err)
		}
		for what, err := range map[string]error{
			"Save":   a.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 300}),
			"Delete": a.Delete(ctx),
			"Err":    la.Err(),
		} {
			if !errors.Is(err, storage.ErrLeaseLost) || !failure.IsPermanent(err) || failure.Fix(err) == "" {
				t.Errorf("old holder's %s: %v, want a permanent ErrLeaseLost with a fix", what, err)
			} else if !strings.Contains(err.Error(), "owner-b #2") {
				t.Errorf("old holder's %s: %q does not name the new holder", what, err)
			}
		}
		select {
		case <-la.Lost():
		case <-time.After(5 * time.Second):
			t.Error("Lost() not closed")
		}
		if got, err := b.Get(ctx); err != nil || got != want {
			t.Errorf("checkpoint = %v, %v; want the new holder's %v", got, err, want)
		}
	})
	t.Run("Release", func(t *testing.T) {
		name := uniqueName(t)
		_, al := opened(t, name)
		_, bl := opened(t, name)
		la := acquire(t, al, "owner-a #1")
		la.Release()
		la.Release()
		acquire(t, bl, "owner-b #2")
	})
}
