package storage

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// rawCheckpoint reads the stored checkpoint's position and owner straight
// from redis.
func rawCheckpoint(t *testing.T, r *testenv.Redis, key string) (position.Position, string) {
	t.Helper()
	raw, err := r.Client(t).Get(testCtx(t), key).Bytes()
	if err != nil {
		t.Fatalf("raw GET %s: %v", key, err)
	}
	pos, err := decodeCheckpoint(raw)
	if err != nil {
		t.Fatalf("stored value %s: %v", raw, err)
	}
	var rec struct{ Owner string }
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	return pos, rec.Owner
}

func acquireT(t *testing.T, s *RedisStore, owner string, ttl time.Duration) Lease {
	t.Helper()
	l, err := s.AcquireLease(testCtx(t), owner, ttl)
	if err != nil {
		t.Fatalf("AcquireLease(%s): %v", owner, err)
	}
	t.Cleanup(l.Release)
	return l
}

func assertLeaseLost(t *testing.T, err error, holder string) {
	t.Helper()
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("want ErrLeaseLost, got %v", err)
	}
	if !failure.IsPermanent(err) {
		t.Errorf("a lost lease must be permanent: %v", err)
	}
	if failure.Fix(err) == "" {
		t.Errorf("a lost lease must carry a fix: %v", err)
	}
	if holder != "" && !strings.Contains(err.Error(), holder) {
		t.Errorf("error %q does not name the new holder %q", err, holder)
	}
}

// TestRedisFencedSave: the checkpoint is written only by the lease's
// holder. A process whose lease lapsed and was taken (here: the lease key
// deleted, as its expiry would, and taken by another) is refused with
// ErrLeaseLost, and the checkpoint keeps the holder's value.
func TestRedisFencedSave(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := testCtx(t)
	raw := r.Client(t)
	opts := RedisOptions{Addr: r.Addr(), Key: "fenced"}
	a, b := openRedisT(t, opts), openRedisT(t, opts)
	la := acquireT(t, a, "producer-a #1", time.Minute)
	p1 := position.Position{File: "mysql-bin.000001", Pos: 100}
	if err := a.Save(ctx, p1); err != nil {
		t.Fatal(err)
	}
	if _, owner := rawCheckpoint(t, r, "fenced"); owner != "producer-a #1" {
		t.Errorf("checkpoint owner = %q, want producer-a #1", owner)
	}

	// While a holds the lease, b can neither take it nor write unleased.
	if _, err := b.AcquireLease(ctx, "producer-b #2", time.Minute); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "producer-a #1") {
		t.Fatalf("second AcquireLease: %v, want ErrHeld naming producer-a #1", err)
	}
	err := b.Save(ctx, position.Position{File: "mysql-bin.000009", Pos: 9})
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "producer-a #1") {
		t.Fatalf("unleased Save while a holds the lease: %v, want ErrHeld naming producer-a #1", err)
	}
	if err := b.Delete(ctx); !errors.Is(err, ErrHeld) {
		t.Fatalf("unleased Delete while a holds the lease: %v, want ErrHeld", err)
	}

	// a's lease lapses (its key is gone) and b takes it and saves.
	if err := raw.Del(ctx, "fenced:lease").Err(); err != nil {
		t.Fatal(err)
	}
	acquireT(t, b, "producer-b #2", time.Minute)
	p2 := position.Position{File: "mysql-bin.000002", Pos: 200}
	if err := b.Save(ctx, p2); err != nil {
		t.Fatal(err)
	}
	err = a.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 300})
	t.Logf("stale holder's Save: %v", err)
	assertLeaseLost(t, err, "producer-b #2")
	select {
	case <-la.Lost():
	default:
		t.Error("Lost() is not closed after a refused Save")
	}
	assertLeaseLost(t, la.Err(), "producer-b #2")
	if err := a.Delete(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("stale holder's Delete: %v, want ErrLeaseLost", err)
	}
	if got, owner := rawCheckpoint(t, r, "fenced"); got != p2 || owner != "producer-b #2" {
		t.Fatalf("checkpoint = %v by %q, want %v by producer-b #2", got, owner, p2)
	}
	// A lost lease is never regained, even once nobody holds it.
	if err := raw.Del(ctx, "fenced:lease").Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 400}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Save after the lease was lost and freed: %v, want ErrLeaseLost", err)
	}
	if got, _ := rawCheckpoint(t, r, "fenced"); got != p2 {
		t.Fatalf("checkpoint = %v, want %v", got, p2)
	}
}

// TestRedisLeaseVanished: a lease key that vanished (redis restarted
// without persistence, or it lapsed and nobody came) is taken again by
// its holder while the checkpoint is as the holder left it; once another
// process wrote the checkpoint, it is lost.
func TestRedisLeaseVanished(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := testCtx(t)
	raw := r.Client(t)
	s := openRedisT(t, RedisOptions{Addr: r.Addr(), Key: "v"})
	l := acquireT(t, s, "holder #1", time.Minute)
	if err := s.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 100}); err != nil {
		t.Fatal(err)
	}
	raw.Del(ctx, "v:lease")
	want := position.Position{File: "mysql-bin.000001", Pos: 200}
	if err := s.Save(ctx, want); err != nil {
		t.Fatalf("Save after the lease key vanished, checkpoint untouched: %v", err)
	}
	if holder, _ := raw.Get(ctx, "v:lease").Result(); holder != "holder #1" {
		t.Errorf("lease holder after re-taking = %q", holder)
	}
	if ttl, _ := raw.PTTL(ctx, "v:lease").Result(); ttl <= 0 {
		t.Errorf("re-taken lease has no expiry: %v", ttl)
	}
	// The holder's last save applied, but its reply was lost: the
	// checkpoint is not the value the store knows, but names the holder.
	raw.Del(ctx, "v:lease")
	mine, _ := encodeCheckpointBy(position.Position{File: "mysql-bin.000001", Pos: 250}, time.Now(), "holder #1")
	raw.Set(ctx, "v", mine, 0)
	if err := s.Save(ctx, want); err != nil {
		t.Fatalf("Save after the lease vanished, the checkpoint being the holder's: %v", err)
	}
	// Everything vanished (a restart without persistence): taken again.
	raw.Del(ctx, "v:lease", "v")
	if err := s.Save(ctx, want); err != nil {
		t.Fatalf("Save after the lease and the checkpoint vanished: %v", err)
	}
	// The lease lapsed and someone else wrote the checkpoint meanwhile.
	raw.Del(ctx, "v:lease")
	other, _ := encodeCheckpointBy(position.Position{File: "mysql-bin.000003", Pos: 4}, time.Now(), "admin #9")
	raw.Set(ctx, "v", other, 0)
	err := s.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 300})
	t.Logf("Save after another wrote: %v", err)
	assertLeaseLost(t, err, "")
	assertContains(t, err, "another process wrote the checkpoint")
	if got, _ := raw.Get(ctx, "v").Result(); got != string(other) {
		t.Errorf("checkpoint overwritten: %s", got)
	}
	assertLeaseLost(t, l.Err(), "")
}

// TestRedisLeaseRefresh: the background refresh keeps the lease, finds
// it taken by another owner (Lost closes, Err names the holder), reports
// it unconfirmed while redis is down, and confirms it again after.
func TestRedisLeaseRefresh(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := testCtx(t)
	raw := r.Client(t)
	s := openRedisT(t, RedisOptions{Addr: r.Addr(), Key: "r"})
	const ttl = 1500 * time.Millisecond
	l := acquireT(t, s, "holder #1", ttl)
	if err := s.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 100}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * ttl) // refreshed meanwhile, or it would have lapsed
	if err := l.Err(); err != nil {
		t.Fatalf("Err after 3 ttl: %v", err)
	}
	if holder, _ := raw.Get(ctx, "r:lease").Result(); holder != "holder #1" {
		t.Fatalf("lease holder = %q, want holder #1", holder)
	}

	// Redis down: the lease is unconfirmed (retryable), then confirmed
	// again once redis is back (SHUTDOWN SAVE kept the checkpoint).
	r.Stop(t)
	time.Sleep(ttl)
	err := l.Err()
	t.Logf("Err with redis down: %v", err)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrLeaseLost) || failure.IsPermanent(err) {
		t.Fatalf("Err with redis down: %v, want ErrUnavailable only", err)
	}
	r.Start(t)
	waitFor(t, 5*time.Second, func() bool { return l.Err() == nil })

	raw.Set(ctx, "r:lease", "intruder #7", time.Minute)
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost() not closed 5s after another owner took the lease")
	}
	assertLeaseLost(t, l.Err(), "intruder #7")
	if holder, _ := raw.Get(ctx, "r:lease").Result(); holder != "intruder #7" {
		t.Errorf("the refresh touched another owner's lease: %q", holder)
	}
	l.Release()
	if holder, _ := raw.Get(ctx, "r:lease").Result(); holder != "intruder #7" {
		t.Errorf("Release of a lost lease removed another owner's: %q", holder)
	}
}

// TestRedisLeaseRelease: Release gives the lease back; the store then
// writes unleased again, and another owner can take it.
func TestRedisLeaseRelease(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := testCtx(t)
	s := openRedisT(t, RedisOptions{Addr: r.Addr(), Key: "rel"})
	l := acquireT(t, s, "holder #1", time.Minute)
	if _, err := s.AcquireLease(ctx, "holder #1", time.Minute); !errors.Is(err, ErrHeld) {
		t.Errorf("a second lease on one store: %v, want ErrHeld", err)
	}
	l.Release()
	l.Release()
	if n, _ := r.Client(t).Exists(ctx, "rel:lease").Result(); n != 0 {
		t.Fatal("lease key left after Release")
	}
	if err := s.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 4}); err != nil {
		t.Fatalf("unleased Save after Release: %v", err)
	}
	other := openRedisT(t, RedisOptions{Addr: r.Addr(), Key: "rel"})
	acquireT(t, other, "holder #2", time.Minute)
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
