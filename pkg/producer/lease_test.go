package producer_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/storage"
)

// fakeLease is a storage.Lease a test loses or leaves unconfirmed at will.
type fakeLease struct {
	mu   sync.Mutex
	err  error
	lost chan struct{}
}

func newFakeLease() *fakeLease { return &fakeLease{lost: make(chan struct{})} }

func (l *fakeLease) Owner() string         { return "producer #1" }
func (l *fakeLease) Lost() <-chan struct{} { return l.lost }
func (l *fakeLease) Release()              {}

func (l *fakeLease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// lose makes the lease lost to holder; withChannel closes Lost too (the
// refresher's view), without it only Err knows (a Save's view).
func (l *fakeLease) lose(holder string, withChannel bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = &storage.LeaseLostError{Where: "checkpoint store", Holder: holder, Owner: l.Owner()}
	if withChannel {
		close(l.lost)
	}
}

func (l *fakeLease) setErr(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

// waitRun waits for Run to return on its own.
func (r *rig) waitRun(within time.Duration) error {
	r.t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(within):
		r.t.Fatalf("Run did not return within %s", within)
		return nil
	}
}

func assertLost(t *testing.T, err error) {
	t.Helper()
	t.Logf("Run: %v", err)
	if !errors.Is(err, storage.ErrLeaseLost) || !failure.IsPermanent(err) {
		t.Fatalf("Run = %v, want a permanent error wrapping storage.ErrLeaseLost", err)
	}
}

// TestUnitLeaseLostStopsAtOnce: when the lease's Lost closes, Run returns
// its error at once, without draining or saving, although the open
// transaction is unacknowledged.
func TestUnitLeaseLostStopsAtOnce(t *testing.T) {
	lease := newFakeLease()
	r := newRigWith(t, nil, lease)
	r.run()
	end := r.src.Append(3)
	r.waitCheckpoint(end)
	release := r.queue.Hold() // acknowledgements held: a drain would wait
	defer release()
	r.src.Append(3)
	waitMessages(t, r.queue, 6)
	saves := len(r.store.Saves())
	began := time.Now()
	lease.lose("producer #2", true)
	assertLost(t, r.waitRun(2*time.Second))
	if took := time.Since(began); took > time.Second {
		t.Errorf("Run took %v to stop after the lease was lost", took)
	}
	if n := len(r.store.Saves()); n != saves {
		t.Errorf("%d checkpoints saved after the lease was lost", n-saves)
	}
}

// TestUnitLeaseGate: nothing is published while the lease is unconfirmed
// (publishing resumes once it is confirmed again), nor once it is lost, even
// before Lost closes.
func TestUnitLeaseGate(t *testing.T) {
	lease := newFakeLease()
	r := newRigWith(t, nil, lease)
	r.run()
	end := r.src.Append(3)
	r.waitCheckpoint(end)

	lease.setErr(fmt.Errorf("lease unconfirmed: %w", storage.ErrUnavailable))
	r.src.Append(3)
	time.Sleep(200 * time.Millisecond)
	if n := len(r.queue.Messages()); n != 3 {
		t.Fatalf("%d messages sent while the lease was unconfirmed, want 3", n)
	}
	lease.setErr(nil)
	end = r.src.Append(1)
	r.waitCheckpoint(end)
	sent := len(r.queue.Messages())

	lease.lose("producer #2", false)
	r.src.Append(3)
	assertLost(t, r.waitRun(2*time.Second))
	if n := len(r.queue.Messages()); n != sent {
		t.Fatalf("%d messages sent after the lease was lost", n-sent)
	}
}
