package binlog

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the read deadlines set on it.
type countingConn struct {
	net.Conn
	deadlines atomic.Int32
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.deadlines.Add(1)
	return c.Conn.SetReadDeadline(t)
}

// TestIdleConn: a silent connection fails a read after the timeout; one
// that hears from the server more often than that does not, and its
// deadline moves a few times, not on every read; a deadline set by the
// caller (go-mysql stopping a read) holds.
func TestIdleConn(t *testing.T) {
	t.Parallel()
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		a, b := net.Pipe()
		defer b.Close()
		c := newIdleConn(a, 200*time.Millisecond, 50*time.Millisecond)
		began := time.Now()
		_, err := c.Read(make([]byte, 1))
		if took := time.Since(began); !errors.Is(err, os.ErrDeadlineExceeded) || took < 150*time.Millisecond || took > 2*time.Second {
			t.Fatalf("read on a silent connection: %v after %s, want a deadline error after about 200ms", err, took)
		}
	})
	t.Run("heartbeats", func(t *testing.T) {
		t.Parallel()
		a, b := net.Pipe()
		defer b.Close()
		counted := &countingConn{Conn: a}
		c := newIdleConn(counted, 400*time.Millisecond, 100*time.Millisecond)
		go func() {
			for i := 0; i < 1000; i++ { // a burst: many reads
				if _, err := b.Write([]byte{1}); err != nil {
					return
				}
			}
			for i := 0; i < 8; i++ { // then heartbeats, every 100ms
				time.Sleep(100 * time.Millisecond)
				if _, err := b.Write([]byte{2}); err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 1)
		for i := 0; i < 1008; i++ {
			if _, err := c.Read(buf); err != nil {
				t.Fatalf("read %d of a connection with heartbeats every 100ms (timeout 400ms): %v", i, err)
			}
		}
		if n := counted.deadlines.Load(); n > 30 {
			t.Errorf("the deadline moved %d times for 1008 reads over about 0.8s", n)
		}
	})
	t.Run("caller's deadline holds", func(t *testing.T) {
		t.Parallel()
		a, b := net.Pipe()
		defer b.Close()
		c := newIdleConn(a, time.Hour, time.Minute)
		if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(began) > 2*time.Second {
			t.Fatalf("read after the caller's 50ms deadline: %v after %s", err, time.Since(began))
		}
	})
}
