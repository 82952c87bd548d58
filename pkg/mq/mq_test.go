package mq

import (
	"context"
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
