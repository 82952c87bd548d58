package testenv

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/internal/natsembed"
)

// NATS is an embedded NATS server with JetStream on a free loopback port,
// its store in a temp dir (kept across Shutdown and Restart).
type NATS struct {
	Host string
	Port int
	Dir  string

	opts NATSOptions
	mu   sync.Mutex
	srv  *natsembed.Server
}

// NATSOptions adjusts StartNATSWith.
type NATSOptions struct {
	// MaxPayload is the server's max_payload in bytes; 0 means NATS'
	// default (1 MiB).
	MaxPayload int32
	// Security is the TLS and authentication the server requires.
	Security NATSSecurity
}

// StartNATS starts a NATS server with JetStream; it is shut down at test
// cleanup.
func StartNATS(t testing.TB) *NATS { return StartNATSWith(t, NATSOptions{}) }

// StartNATSWith is StartNATS with options.
func StartNATSWith(t testing.TB, opts NATSOptions) *NATS {
	t.Helper()
	n := &NATS{Host: "127.0.0.1", Port: FreePort(t), Dir: t.TempDir(), opts: opts}
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
	sec := n.opts.Security
	srv, err := natsembed.Start(natsembed.Options{Host: n.Host, Port: n.Port, StoreDir: n.Dir, Name: "testenv", MaxPayload: n.opts.MaxPayload,
		Auth: sec.Auth, TLS: sec.serverTLS(t), Tune: sec.tune()})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	n.srv = srv
}

// Conn returns a NATS connection with the Security's Admin options and
// TLS, closed at cleanup.
func (n *NATS) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL(), n.opts.Security.clientOptions(t)...)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", n.URL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// js returns a JetStream context on a fresh connection.
func (n *NATS) js(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(n.Conn(t))
	if err != nil {
		t.Fatalf("testenv: jetstream on %s: %v", n.URL(), err)
	}
	return js
}

// SubjectCount returns how many messages stream holds on subject (0 when
// the stream does not exist).
func (n *NATS) SubjectCount(t testing.TB, stream, subject string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := n.js(t).Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("testenv: stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("testenv: stream %s info: %v", stream, err)
	}
	return int(info.State.Subjects[subject])
}

// Subjects lists the subjects stream holds messages on, sorted.
func (n *NATS) Subjects(t testing.TB, stream string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := n.js(t).Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("testenv: stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatalf("testenv: stream %s info: %v", stream, err)
	}
	var out []string
	for subj := range info.State.Subjects {
		out = append(out, subj)
	}
	slices.Sort(out)
	return out
}

// ReadSubject returns the data of every message stream holds on subject, in
// stream order, reading with an ordered consumer until it has them all.
func (n *NATS) ReadSubject(t testing.TB, stream, subject string) [][]byte {
	t.Helper()
	want := n.SubjectCount(t, stream, subject)
	if want == 0 {
		return [][]byte{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons, err := n.js(t).OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("testenv: ordered consumer on %s %s: %v", stream, subject, err)
	}
	out := make([][]byte, 0, want)
	for len(out) < want {
		batch, err := cons.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("testenv: read %s %s: %v", stream, subject, err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, append([]byte(nil), m.Data()...))
			got++
		}
		if got == 0 || ctx.Err() != nil {
			t.Fatalf("testenv: read %s %s: got %d of %d messages", stream, subject, len(out), want)
		}
	}
	return out
}
