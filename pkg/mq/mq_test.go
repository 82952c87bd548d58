package mq

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// abandonThenClose publishes a batch, abandons a second one with acks still
// outstanding (a 1ms deadline), closes q, and fails the test unless the
// goroutine count returns to baseline within 10s.
func abandonThenClose(t *testing.T, q MessageQueue, subject string, baseline int) {
	t.Helper()
	if err := q.Publish(context.Background(), makeMsgs("l", 1000, []string{subject}, 100)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	_ = q.Publish(ctx, makeMsgs("m", 20000, []string{subject}, 100))
	cancel()
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines 10s after Close, %d before:\n%s", n, baseline, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expiredDeadlineFails publishes with an already expired deadline to a
// queue whose broker is down: it must fail with the context's error, fast.
func expiredDeadlineFails(t *testing.T, q MessageQueue, subject string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	start := time.Now()
	err := q.Publish(ctx, makeMsgs("x", 100, []string{subject}, 100))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish with an expired deadline: %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("Publish with an expired deadline took %v", took)
	}
}

// closeTwiceThenPublish closes q twice (both nil) and expects a later
// Publish to fail with ErrClosed.
func closeTwiceThenPublish(t *testing.T, q MessageQueue, subject string) {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := q.Publish(context.Background(), makeMsgs("z", 1, []string{subject}, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
}

// closeDuringPublish closes q while a long Publish (window 1) is running:
// the Publish must end with ErrClosed within 5s.
func closeDuringPublish(t *testing.T, q MessageQueue, subject string) {
	t.Helper()
	msgs := makeMsgs("cd", 50000, []string{subject}, 300)
	errc := make(chan error, 1)
	go func() { errc <- q.Publish(context.Background(), msgs) }()
	time.Sleep(20 * time.Millisecond)
	if err := q.Close(); err != nil {
		t.Fatalf("Close during Publish: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Publish interrupted by Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish did not return within 5s of Close")
	}
}
