package testenv

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats-streaming-server/stores"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// StanClusterID is the cluster id of every server StartStan starts.
const StanClusterID = "test-cluster"

const stanReadTimeout = 30 * time.Second

// Stan is a NATS Streaming server embedded in the test process by StartStan,
// with its embedded NATS server on Host:Port (127.0.0.1) and a file store in
// Dir, so stored messages survive Shutdown and Restart.
type Stan struct {
	Host      string
	Port      int
	ClusterID string
	// Dir is the file store directory.
	Dir string

	sec        NATSSecurity
	serverTLS  *tls.Config
	clientOpts []nats.Option
	mu         sync.Mutex
	srv        *stand.StanServer // nil while shut down
}

// StartStan starts a NATS Streaming server (cluster id "test-cluster") on a
// free loopback port with a file store in a temp dir, no channel, message,
// byte or subscription limits, and fast client heartbeats (1s interval, 1s
// timeout, 3 misses) so that a client that died without closing is dropped
// within seconds and its client ID can be reused at once. The server is shut
// down at test cleanup. It fails the test when the server cannot start.
func StartStan(t testing.TB) *Stan { return StartStanWith(t, NATSSecurity{}) }

// StartStanWith is StartStan with a NATS server requiring sec's TLS and
// authentication. The streaming server connects to its own NATS server
// with sec.Admin (and TLS), or as the first of sec.Auth.Users, which must
// be allowed everything.
func StartStanWith(t testing.TB, sec NATSSecurity) *Stan {
	t.Helper()
	s := &Stan{Host: "127.0.0.1", ClusterID: StanClusterID, Dir: t.TempDir(), sec: sec}
	// Built once: start has no testing.TB.
	s.serverTLS, s.clientOpts = sec.serverTLS(t), sec.clientOptions(t)
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.srv != nil {
			s.srv.Shutdown()
			s.srv = nil
		}
	})
	began := time.Now()
	for attempt := 1; ; attempt++ {
		s.Port = FreePort(t)
		err := s.start()
		if err == nil {
			break
		}
		if attempt < startAttempts && strings.Contains(err.Error(), "address already in use") {
			t.Logf("testenv: nats streaming port %d was taken, retrying with another port", s.Port)
			continue
		}
		t.Fatalf("testenv: start nats streaming: %v", err)
	}
	t.Logf("testenv: nats streaming on %s started in %s", s.URL(), time.Since(began).Round(time.Millisecond))
	return s
}

// start runs the embedded server on s.Port with the store in s.Dir.
func (s *Stan) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("nats streaming on %s is already running", s.URL())
	}
	sOpts := stand.GetDefaultOptions()
	sOpts.ID = s.ClusterID
	sOpts.StoreType = stores.TypeFile
	sOpts.FilestoreDir = s.Dir
	sOpts.FileStoreOpts.DoSync = false
	// Zero global limits mean unlimited.
	sOpts.StoreLimits = stores.StoreLimits{}
	sOpts.ClientHBInterval = time.Second
	sOpts.ClientHBTimeout = time.Second
	sOpts.ClientHBFailCount = 3
	sOpts.EnableLogging = false
	sOpts.HandleSignals = false

	nOpts := stand.NewNATSOptions()
	nOpts.Host = s.Host
	nOpts.Port = s.Port
	nOpts.NoLog = true
	nOpts.NoSigs = true
	nOpts.HTTPPort = 0
	s.sec.Auth.Apply(nOpts)
	if s.serverTLS != nil {
		nOpts.TLS, nOpts.TLSConfig, nOpts.TLSTimeout = true, s.serverTLS, 5
		nOpts.TLSVerify = s.sec.VerifyClients
	}
	if s.sec.Operator != nil {
		s.sec.Operator.apply(nOpts)
	}
	sOpts.NATSClientOpts = s.clientOpts
	if users := s.sec.Auth.Users; len(users) > 0 {
		// The streaming server sets its connection's user and password
		// last, from these.
		sOpts.Username, sOpts.Password = users[0].Name, users[0].Password
	}

	srv, err := stand.RunServerWithOpts(sOpts, nOpts)
	if err != nil {
		return fmt.Errorf("run nats streaming server on %s (store %s): %w", s.URL(), s.Dir, err)
	}
	s.srv = srv
	return nil
}

// URL returns "nats://127.0.0.1:PORT".
func (s *Stan) URL() string {
	return "nats://" + addr(s.Host, s.Port)
}

// Shutdown stops the server; clients then find it unreachable. Stored
// messages stay in Dir. Shutting down a stopped server does nothing.
func (s *Stan) Shutdown(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	began := time.Now()
	s.srv.Shutdown()
	s.srv = nil
	t.Logf("testenv: nats streaming on %s shut down in %s", s.URL(), time.Since(began).Round(time.Millisecond))
}

// Restart starts a shut-down server again on the same port and store. It
// fails the test when the server is running or cannot start.
func (s *Stan) Restart(t testing.TB) {
	t.Helper()
	began := time.Now()
	if err := s.start(); err != nil {
		t.Fatalf("testenv: restart nats streaming: %v", err)
	}
	t.Logf("testenv: nats streaming on %s restarted in %s", s.URL(), time.Since(began).Round(time.Millisecond))
}

// Server returns the running embedded server, failing the test when it is
// shut down.
func (s *Stan) Server(t testing.TB) *stand.StanServer {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		t.Fatalf("testenv: nats streaming on %s is shut down", s.URL())
	}
	return s.srv
}

// Conn connects a stan client with clientID (a fresh random one when "")
// and closes it at test cleanup. It fails the test when the connection
// cannot be made.
func (s *Stan) Conn(t testing.TB, clientID string) stan.Conn {
	t.Helper()
	if clientID == "" {
		clientID = randomID("testenv")
	}
	sc, err := stan.Connect(s.ClusterID, clientID, stan.NatsURL(s.URL()), stan.ConnectWait(5*time.Second), stan.NatsOptions(s.clientOpts...))
	if err != nil {
		t.Fatalf("testenv: connect to nats streaming %s as %q: %v", s.URL(), clientID, err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}

// monitor runs the server's monitoring handler for path?query in process
// (no HTTP port is opened) and returns the status and body.
func (s *Stan) monitor(t testing.TB, query url.Values) (int, []byte) {
	t.Helper()
	srv := s.Server(t)
	req := httptest.NewRequest(http.MethodGet, stand.ChannelsPath+"?"+query.Encode(), nil)
	rec := httptest.NewRecorder()
	srv.HandleChannelsz(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// channelInfo returns the store state of channel, ok=false when the server
// has no such channel.
func (s *Stan) channelInfo(t testing.TB, channel string) (info stand.Channelz, ok bool) {
	t.Helper()
	code, body := s.monitor(t, url.Values{"channel": {channel}})
	if code == http.StatusNotFound {
		return info, false
	}
	if code != http.StatusOK {
		t.Fatalf("testenv: nats streaming channel %q info: HTTP %d: %s", channel, code, body)
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("testenv: nats streaming channel %q info: decode %s: %v", channel, body, err)
	}
	return info, true
}

// Channels lists the names of the channels the server currently stores,
// sorted. It fails the test when the server is shut down.
func (s *Stan) Channels(t testing.TB) []string {
	t.Helper()
	const limit = 1024
	names := []string{}
	for offset := 0; ; offset += limit {
		code, body := s.monitor(t, url.Values{"offset": {fmt.Sprint(offset)}, "limit": {fmt.Sprint(limit)}})
		if code != http.StatusOK {
			t.Fatalf("testenv: nats streaming channel list: HTTP %d: %s", code, body)
		}
		var page stand.Channelsz
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("testenv: nats streaming channel list: decode %s: %v", body, err)
		}
		names = append(names, page.Names...)
		if len(page.Names) == 0 || offset+limit >= page.Total {
			return names
		}
	}
}

// ChannelCount returns how many messages channel holds (0 when it does not
// exist).
func (s *Stan) ChannelCount(t testing.TB, channel string) int {
	t.Helper()
	info, ok := s.channelInfo(t, channel)
	if !ok {
		return 0
	}
	return info.Msgs
}

// ReadChannel returns the data of every message stored on channel, in
// sequence order, as of the call (an empty slice when the channel does not
// exist). It reads with a fresh stan subscription from the first stored
// sequence up to the last one, and fails the test when they do not all
// arrive within 30s or arrive out of order.
func (s *Stan) ReadChannel(t testing.TB, channel string) [][]byte {
	t.Helper()
	info, ok := s.channelInfo(t, channel)
	if !ok || info.Msgs == 0 {
		return [][]byte{}
	}
	out, err := ReadStanSequences(s.URL(), s.ClusterID, channel, info.FirstSeq, info.LastSeq, stanReadTimeout, s.clientOpts...)
	if err != nil {
		t.Fatalf("testenv: read nats streaming channel %q: %v", channel, err)
	}
	return out
}

// ReadStanSequences reads messages first..last of channel from the NATS
// Streaming server at url with a fresh subscription, in order. It fails
// when one arrives out of order or not all arrive within timeout. opts are
// added to the NATS connection's options (credentials, TLS).
func ReadStanSequences(url, clusterID, channel string, first, last uint64, timeout time.Duration, opts ...nats.Option) ([][]byte, error) {
	clientID := randomID("testenv-reader")
	sc, err := stan.Connect(clusterID, clientID, stan.NatsURL(url), stan.ConnectWait(5*time.Second), stan.NatsOptions(opts...))
	if err != nil {
		return nil, fmt.Errorf("connect to nats streaming %s as %q: %w", url, clientID, err)
	}
	defer func() { _ = sc.Close() }()
	var (
		mu      sync.Mutex
		out     = make([][]byte, 0, last-first+1)
		next    = first
		failure error
		done    = make(chan struct{})
	)
	sub, err := sc.Subscribe(channel, func(m *stan.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if failure != nil || next > last {
			return
		}
		if m.Sequence != next {
			failure = fmt.Errorf("got sequence %d, want %d", m.Sequence, next)
			close(done)
			return
		}
		out = append(out, append([]byte(nil), m.Data...))
		next++
		if next > last {
			close(done)
		}
	}, stan.StartAtSequence(first), stan.MaxInflight(8192), stan.AckWait(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("subscribe to channel %q: %w", channel, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
	mu.Lock()
	defer mu.Unlock()
	if failure != nil {
		return nil, failure
	}
	if next <= last {
		return nil, fmt.Errorf("got %d of %d messages (sequences %d..%d) within %s", len(out), last-first+1, first, last, timeout)
	}
	return out, nil
}

// randomID returns prefix-<16 hex digits>, a valid stan client ID.
func randomID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}
