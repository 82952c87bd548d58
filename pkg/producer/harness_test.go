package producer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/internal/testenv"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// producerBin is the producer binary under test, built once by TestMain the
// way the Dockerfile builds it (static, CGO_ENABLED=0).
var producerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dbsync-producer-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	producerBin = filepath.Join(dir, "producer")
	build := exec.Command("go", "build", "-o", producerBin, "github.com/dbsync/dbsync/cmd/producer")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build producer: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one MariaDB, one NATS Streaming server and a producer data dir.
type env struct {
	t    testing.TB
	db   *testenv.MariaDB
	stan *testenv.Stan
	dir  string
	// cfg is written to dir/config.json before each producer start.
	cfg map[string]any
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, db: testenv.StartMariaDB(t, testenv.MariaDBOptions{}), stan: testenv.StartStan(t), dir: t.TempDir()}
	e.db.CreateReplicationUser(t, "dbsync", "secret")
	e.cfg = map[string]any{
		"Mysql":   map[string]any{"Host": e.db.Host, "Port": strconv.Itoa(e.db.Port), "Username": "dbsync", "Password": "secret", "HeartbeatPeriod": "1s", "ReadTimeout": "5s"},
		"Storage": map[string]any{"DaoName": "bolt", "PosKey": "key"},
		"Bolt":    map[string]any{"File": "pos.db", "Bucket": "pos"},
		"MQName":  "stan",
		"Stan":    map[string]any{"Host": "nats://" + e.stan.Host, "Port": strconv.Itoa(e.stan.Port), "ClusterID": e.stan.ClusterID, "ClientID": "dbsync-test"},
		"DataDir": e.dir,
		"Log":     map[string]any{"Level": "debug"},
	}
	return e
}

// set changes one config key, "Section.Key" or "Key".
func (e *env) set(key string, value any) {
	if sec, k, ok := strings.Cut(key, "."); ok {
		m, _ := e.cfg[sec].(map[string]any)
		if m == nil {
			m = map[string]any{}
			e.cfg[sec] = m
		}
		m[k] = value
		return
	}
	e.cfg[key] = value
}

func (e *env) writeConfig() string {
	e.t.Helper()
	b, err := json.MarshalIndent(e.cfg, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// proc is a running producer.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stderr *syncWriter
	done   chan struct{}
	err    error
}

func (e *env) start(extraEnv ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(producerBin, "-config", e.writeConfig())
	cmd.Env = append(os.Environ(), extraEnv...)
	p := &proc{t: e.t, cmd: cmd, stderr: &syncWriter{buf: &bytes.Buffer{}}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// syncWriter lets the test read stderr while the process writes it.
type syncWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// output is what the producer wrote to stderr so far.
func (p *proc) output() string { return p.stderr.String() }

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop() int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(60 * time.Second)
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// wait returns the exit code once the process ended.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("producer did not exit within %s; stderr:\n%s", timeout, p.output())
	}
	return p.cmd.ProcessState.ExitCode()
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func (p *proc) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

// checkpoint reads the bolt checkpoint (the producer must not be running).
func (e *env) checkpoint() (position.Position, error) {
	e.t.Helper()
	s, err := storage.OpenBolt(storage.BoltOptions{Path: filepath.Join(e.dir, "pos.db"), Timeout: 5 * time.Second}, logrus.New())
	if err != nil {
		return position.Position{}, err
	}
	defer s.Close()
	return s.Get(context.Background())
}

// waitFor polls until the subject holds at least n messages.
func (e *env) waitFor(subject string, n int, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := e.stan.ChannelCount(e.t, subject)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("subject %s holds %d messages, want %d within %s", subject, got, n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDistinct polls until the subject holds at least n distinct row
// changes (duplicates from replays not counted).
func (e *env) waitDistinct(subject string, n int, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if e.stan.ChannelCount(e.t, subject) >= n {
			seen := map[string]bool{}
			for _, env := range e.read(subject) {
				seen[env.ID] = true
			}
			if len(seen) >= n {
				return
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("subject %s holds %d distinct changes, want %d within %s", subject, len(seen), n, timeout)
			}
		} else if time.Now().After(deadline) {
			e.t.Fatalf("subject %s holds fewer than %d messages after %s", subject, n, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// read returns the envelopes stored on subject, in order.
func (e *env) read(subject string) []*envelope.Envelope {
	e.t.Helper()
	var out []*envelope.Envelope
	for _, data := range e.stan.ReadChannel(e.t, subject) {
		env, err := envelope.Decode(data)
		if err != nil {
			e.t.Fatalf("subject %s: %v: %s", subject, err, data)
		}
		out = append(out, env)
	}
	return out
}

// intField returns an integer column of a row image.
func intField(t testing.TB, img map[string]json.RawMessage, col string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(string(img[col]), 10, 64)
	if err != nil {
		t.Fatalf("column %s = %s: %v", col, img[col], err)
	}
	return n
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
