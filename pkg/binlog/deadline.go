package binlog

import (
	"net"
	"sync"
	"time"
)

// idleConn fails a read once the connection has been silent for timeout,
// as a per-read deadline of timeout would, but moves the deadline only when
// it has come within slack of what it should be: the binlog stream reads a
// packet per event, and setting a deadline on every read cost the producer
// a seventh of its CPU time on single-row transactions. A read blocked
// waiting for the next heartbeat has at least timeout-slack left, longer
// than the heartbeat period.
//
// Once someone else sets a read deadline (go-mysql does, to interrupt a
// read when it stops), that one holds.
type idleConn struct {
	net.Conn
	timeout, slack time.Duration

	mu     sync.Mutex
	set    time.Time // when the deadline was last moved
	forced bool
}

// newIdleConn wraps c; heartbeat is the period the server sends a
// heartbeat at while idle (shorter than timeout).
func newIdleConn(c net.Conn, timeout, heartbeat time.Duration) net.Conn {
	if timeout <= 0 {
		return c
	}
	slack := min(timeout/8, (timeout-heartbeat)/2)
	if slack <= 0 {
		slack = 0 // a deadline per read
	}
	return &idleConn{Conn: c, timeout: timeout, slack: slack}
}

func (c *idleConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if !c.forced {
		if now := time.Now(); now.Sub(c.set) >= c.slack {
			c.set = now
			if err := c.Conn.SetReadDeadline(now.Add(c.timeout)); err != nil {
				c.mu.Unlock()
				return 0, err
			}
		}
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forced = true
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forced = true
	return c.Conn.SetDeadline(t)
}
