package testenv

import (
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/dbsync/dbsync/internal/natsembed"
)

// NATS is an embedded NATS server with JetStream on a free loopback port,
// its store in a temp dir (kept across Shutdown and Restart).
type NATS struct {
	Host string
	Port int
	Dir  string

	mu  sync.Mutex
	srv *natsembed.Server
}

// StartNATS starts a NATS server with JetStream; it is shut down at test
// cleanup.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{Host: "127.0.0.1", Port: FreePort(t), Dir: t.TempDir()}
	n.Restart(t)
	t.Cleanup(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.srv != nil {
			n.srv.Shutdown()
			n.srv = nil
		}
	})
	return n
}

// URL returns "nats://127.0.0.1:PORT".
func (n *NATS) URL() string { return "nats://" + addr(n.Host, n.Port) }

// Shutdown stops the server (clients see it as unreachable).
func (n *NATS) Shutdown(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv = nil
	}
}

// Restart starts the server again on the same port and store.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		t.Fatalf("testenv: nats on %s is already running", n.URL())
	}
	srv, err := natsembed.Start(natsembed.Options{Host: n.Host, Port: n.Port, StoreDir: n.Dir, Name: "testenv"})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	n.srv = srv
}

// Conn returns a plain NATS connection, closed at cleanup.
func (n *NATS) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", n.URL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}
