package testenv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
	// cluster, when set, makes the server a node of a cluster.
	cluster func(*server.Options)
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

// StartNATSCluster starts n NATS servers with JetStream forming one
// cluster (routes on free loopback ports), and waits until JetStream
// answers; they are shut down at test cleanup. A client connected to one
// learns the others.
func StartNATSCluster(t testing.TB, n int) []*NATS {
	t.Helper()
	routePorts := make([]int, n)
	var routes []string
	for i := range routePorts {
		routePorts[i] = FreePort(t)
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(routePorts[i]))
	}
	nodes := make([]*NATS, n)
	for i := range nodes {
		node := &NATS{Host: "127.0.0.1", Port: FreePort(t), Dir: t.TempDir()}
		name, routePort := fmt.Sprintf("node-%d", i), routePorts[i]
		node.opts.cluster = func(o *server.Options) {
			o.ServerName = name
			o.Cluster = server.ClusterOpts{Name: "dbsync-test", Host: "127.0.0.1", Port: routePort}
			o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}
		t.Cleanup(func() {
			node.mu.Lock()
			defer node.mu.Unlock()
			if node.srv != nil {
				node.srv.Shutdown()
				node.srv = nil
			}
		})
		nodes[i] = node
	}
	var wg sync.WaitGroup
	for _, node := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); node.Restart(t) }()
	}
	wg.Wait()
	// JetStream answers once the cluster elected its meta leader.
	nc := nodes[0].Conn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: the NATS cluster's JetStream did not answer within 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	tune := sec.tune()
	if n.opts.cluster != nil {
		secTune := tune
		tune = func(o *server.Options) {
			if secTune != nil {
				secTune(o)
			}
			n.opts.cluster(o)
		}
	}
	srv, err := natsembed.Start(natsembed.Options{Host: n.Host, Port: n.Port, StoreDir: n.Dir, Name: "testenv", MaxPayload: n.opts.MaxPayload,
		Auth: sec.Auth, TLS: sec.serverTLS(t), Tune: tune})
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
	empty := 0 // consecutive empty fetches (a cluster electing a leader)
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
		if got == 0 {
			empty++
		} else {
			empty = 0
		}
		if empty >= 6 || ctx.Err() != nil {
			t.Fatalf("testenv: read %s %s: got %d of %d messages", stream, subject, len(out), want)
		}
	}
	return out
}
