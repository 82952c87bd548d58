package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

const (
	// brokerStartTimeout bounds a broker process start (a JetStream or
	// stan file store recovery included).
	brokerStartTimeout = 30 * time.Second
	// brokerStopTimeout bounds a SIGTERM shutdown before SIGKILL.
	brokerStopTimeout = 30 * time.Second
	// readTimeout bounds reading a whole subject back.
	readTimeout = 60 * time.Second
)

// JetStreamStream and JetStreamPrefix are the producer's JetStream defaults
// the harness configures: subjects are JetStreamPrefix + "db.table".
const (
	JetStreamStream = "DBSYNC"
	JetStreamPrefix = "dbsync."
)

// Broker is a broker running as a child process of the test (so a scenario
// can SIGKILL, SIGTERM, SIGSTOP and restart it): NATS with JetStream
// (cmd/natsbroker) when Kind is e2e.JetStream, NATS Streaming
// (cmd/stanbroker, cluster id testenv.StanClusterID) when Kind is e2e.Stan.
// It listens on Host:Port (127.0.0.1, a free port kept across restarts) and
// keeps its store in Dir. Subjects passed to its methods are "db.table";
// the broker adds JetStreamPrefix for JetStream. The process is killed at
// test cleanup. Methods fail the test (t.Fatalf) on errors, except where
// noted.
type Broker struct {
	Kind      string
	Host      string
	Port      int
	ClusterID string // NATS Streaming only
	// HTTPPort serves NATS Streaming's monitoring endpoints (0 for JetStream).
	HTTPPort int
	Dir      string
	// LogFile collects the process's stdout and stderr over all its runs.
	LogFile string

	t   testing.TB
	bin string

	mu     sync.Mutex
	child  *testenv.Child
	frozen bool
}

// startBroker starts a broker of kind from bin on free ports.
func startBroker(t testing.TB, bin, kind string) *Broker {
	t.Helper()
	if kind != e2e.Stan && kind != e2e.JetStream {
		t.Fatalf("faults: unknown broker kind %q (want %q or %q)", kind, e2e.Stan, e2e.JetStream)
	}
	dir := t.TempDir()
	b := &Broker{Kind: kind, Host: "127.0.0.1", Dir: filepath.Join(dir, "store"), LogFile: filepath.Join(dir, "broker.log"), t: t, bin: bin}
	if kind == e2e.Stan {
		b.ClusterID = testenv.StanClusterID
	}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.running() {
			if b.frozen {
				b.child.Signal(syscall.SIGCONT)
			}
			b.child.Kill()
		}
	})
	for attempt := 1; ; attempt++ {
		b.Port = testenv.FreePort(t)
		if kind == e2e.Stan {
			b.HTTPPort = testenv.FreePort(t)
		}
		err := b.start()
		if err == nil {
			return b
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatalf("faults: start %s broker: %v", kind, err)
	}
}

// running reports whether the process is alive; b.mu must be held.
func (b *Broker) running() bool {
	return b.child != nil && !b.child.Exited()
}

// Running reports whether the broker process is alive (a frozen one is).
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running()
}

// URL is "nats://127.0.0.1:PORT", the broker's client address.
func (b *Broker) URL() string { return "nats://" + b.Addr() }

// Addr is "127.0.0.1:PORT".
func (b *Broker) Addr() string { return b.Host + ":" + strconv.Itoa(b.Port) }

// Prefix is what the producer prepends to "db.table" to form a subject:
// JetStreamPrefix for JetStream, "" for NATS Streaming.
func (b *Broker) Prefix() string {
	if b.Kind == e2e.JetStream {
		return JetStreamPrefix
	}
	return ""
}

// start launches the process and waits for its ready line.
func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running() {
		return fmt.Errorf("broker on %s is already running", b.Addr())
	}
	args := []string{"-host", b.Host, "-port", strconv.Itoa(b.Port), "-dir", b.Dir}
	if b.Kind == e2e.Stan {
		args = append(args, "-http", strconv.Itoa(b.HTTPPort), "-cluster", b.ClusterID)
	}
	out, err := os.OpenFile(b.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open broker log %s: %w", b.LogFile, err)
	}
	offset, _ := out.Seek(0, io.SeekEnd)
	cmd := exec.Command(b.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	child, err := testenv.StartChild(cmd)
	if err != nil {
		_ = out.Close()
		return err
	}
	go func() { <-child.Done(); _ = out.Close() }()
	b.child, b.frozen = child, false
	done := child.Done()
	deadline := time.Now().Add(brokerStartTimeout)
	for {
		log := readFrom(b.LogFile, offset)
		if strings.Contains(log, " ready on ") {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s %s exited before it was ready: %s", b.bin, strings.Join(args, " "), strings.TrimSpace(log))
		default:
		}
		if time.Now().After(deadline) {
			child.Kill()
			return fmt.Errorf("%s %s not ready within %s: %s", b.bin, strings.Join(args, " "), brokerStartTimeout, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start starts a stopped or killed broker again on the same port and store.
func (b *Broker) Start() {
	b.t.Helper()
	began := time.Now()
	if err := b.start(); err != nil {
		b.t.Fatalf("faults: restart %s broker: %v", b.Kind, err)
	}
	b.t.Logf("faults: %s broker on %s started in %s", b.Kind, b.Addr(), time.Since(began).Round(time.Millisecond))
}

// Kill ends the broker with SIGKILL (a crash) and waits for it to exit.
func (b *Broker) Kill() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running() {
		return
	}
	b.child.Kill()
	b.frozen = false
	b.t.Logf("faults: %s broker on %s killed (SIGKILL)", b.Kind, b.Addr())
}

// Stop shuts the broker down with SIGTERM (thawing it first when frozen)
// and waits for it to exit; after 30s it is killed and the test fails.
func (b *Broker) Stop() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running() {
		return
	}
	b.child.Signal(syscall.SIGTERM)
	if b.frozen {
		b.child.Signal(syscall.SIGCONT)
		b.frozen = false
	}
	select {
	case <-b.child.Done():
		b.t.Logf("faults: %s broker on %s stopped (SIGTERM)", b.Kind, b.Addr())
	case <-time.After(brokerStopTimeout):
		b.child.Kill()
		b.t.Errorf("faults: %s broker on %s did not stop within %s of SIGTERM; killed it", b.Kind, b.Addr(), brokerStopTimeout)
	}
}

// Freeze suspends the broker with SIGSTOP: its sockets stay open, it
// answers nothing (the kernel still accepts connections into its backlog).
func (b *Broker) Freeze() {
	b.t.Helper()
	b.signal(syscall.SIGSTOP, true)
	b.t.Logf("faults: %s broker on %s frozen (SIGSTOP)", b.Kind, b.Addr())
}

// Thaw resumes a frozen broker with SIGCONT.
func (b *Broker) Thaw() {
	b.t.Helper()
	b.signal(syscall.SIGCONT, false)
	b.t.Logf("faults: %s broker on %s thawed (SIGCONT)", b.Kind, b.Addr())
}

func (b *Broker) signal(sig syscall.Signal, frozen bool) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running() {
		b.t.Fatalf("faults: %s broker on %s is not running (signal %v)", b.Kind, b.Addr(), sig)
	}
	if err := b.child.Signal(sig); err != nil {
		b.t.Fatalf("faults: %s broker: %v", b.Kind, err)
	}
	b.frozen = frozen
}

// Count returns how many messages the broker holds on subject ("db.table"),
// duplicates included; 0 when there is none.
func (b *Broker) Count(subject string) int {
	b.t.Helper()
	n, err := b.count(subject)
	if err != nil {
		b.t.Fatalf("faults: count %s on %s broker: %v", subject, b.Kind, err)
	}
	return n
}

func (b *Broker) count(subject string) (int, error) {
	if b.Kind == e2e.JetStream {
		return b.jsCount(subject)
	}
	info, ok, err := b.channelInfo(subject)
	if err != nil || !ok {
		return 0, err
	}
	return info.Msgs, nil
}

// RawMessages returns the data of every message stored on subject, in
// store order.
func (b *Broker) RawMessages(subject string) [][]byte {
	b.t.Helper()
	var out [][]byte
	var err error
	if b.Kind == e2e.JetStream {
		out, err = b.jsRead(subject)
	} else {
		out, err = b.stanRead(subject)
	}
	if err != nil {
		b.t.Fatalf("faults: read %s from %s broker: %v", subject, b.Kind, err)
	}
	return out
}

// Read returns the envelopes stored on subject, in store order. It fails
// the test on a message that is not an envelope.
func (b *Broker) Read(subject string) []*envelope.Envelope {
	b.t.Helper()
	var out []*envelope.Envelope
	for i, data := range b.RawMessages(subject) {
		env, err := envelope.Decode(data)
		if err != nil {
			b.t.Fatalf("faults: %s message %d: %v: %s", subject, i, err, data)
		}
		out = append(out, env)
	}
	return out
}

// WaitDistinct polls until subject holds at least n distinct row changes
// (envelope ids; replays not counted) and reports whether it did within
// timeout. It does not fail the test: a scenario goes on to Check, which
// says what is missing.
func (b *Broker) WaitDistinct(subject string, n int, timeout time.Duration) bool {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		count, err := b.count(subject)
		if err == nil && count >= n {
			if n == 0 {
				return true
			}
			seen := map[string]bool{}
			for _, env := range b.Read(subject) {
				seen[env.ID] = true
			}
			if len(seen) >= n {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// jsConn connects a plain client for one read.
func (b *Broker) jsConn() (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(b.URL(), nats.Timeout(5*time.Second), nats.MaxReconnects(0))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", b.URL(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (b *Broker) jsCount(subject string) (int, error) {
	nc, js, err := b.jsConn()
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, JetStreamStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", JetStreamStream, err)
	}
	full := JetStreamPrefix + subject
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(full))
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", JetStreamStream, err)
	}
	return int(info.State.Subjects[full]), nil
}

func (b *Broker) jsRead(subject string) ([][]byte, error) {
	want, err := b.jsCount(subject)
	if err != nil || want == 0 {
		return [][]byte{}, err
	}
	nc, js, err := b.jsConn()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	full := JetStreamPrefix + subject
	cons, err := js.OrderedConsumer(ctx, JetStreamStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{full}})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", full, err)
	}
	out := make([][]byte, 0, want)
	for len(out) < want {
		batch, err := cons.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", full, err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, append([]byte(nil), m.Data()...))
			got++
		}
		if got == 0 || ctx.Err() != nil {
			return nil, fmt.Errorf("got %d of %d messages of %s", len(out), want, full)
		}
	}
	return out, nil
}

// channelz is the part of NATS Streaming's /streaming/channelsz answer for
// one channel that the harness reads.
type channelz struct {
	Msgs     int    `json:"msgs"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// channelInfo asks the monitoring endpoint for channel's state; ok=false
// when the channel does not exist.
func (b *Broker) channelInfo(channel string) (channelz, bool, error) {
	var info channelz
	u := fmt.Sprintf("http://%s:%d/streaming/channelsz?%s", b.Host, b.HTTPPort, url.Values{"channel": {channel}}.Encode())
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return info, false, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return info, false, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return info, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return info, false, fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return info, false, fmt.Errorf("GET %s: decode %s: %w", u, body, err)
	}
	return info, true, nil
}

// stanRead reads every message of channel with a fresh subscription from
// the first stored sequence to the last one.
func (b *Broker) stanRead(channel string) ([][]byte, error) {
	info, ok, err := b.channelInfo(channel)
	if err != nil || !ok || info.Msgs == 0 {
		return [][]byte{}, err
	}
	return testenv.ReadStanSequences(b.URL(), b.ClusterID, channel, info.FirstSeq, info.LastSeq, readTimeout)
}

// readFrom returns the file's content from offset ("" when unreadable).
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
