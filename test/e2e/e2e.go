// Package e2e runs the producer binary against real test servers for
// end-to-end tests: build it once per test binary (BuildProducer in
// TestMain), then NewEnv per test.
package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
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

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/test/testenv"
)

// ProducerBinEnv names an environment variable that, when set, gives a
// producer binary the tests run instead of building one (to run today's
// tests against an older build, say).
const ProducerBinEnv = "DBSYNC_TEST_PRODUCER_BIN"

// BuildProducer builds cmd/producer the way the Dockerfile does (static,
// CGO_ENABLED=0) into a temporary directory; cleanup removes it. With
// ProducerBinEnv set it returns that binary instead.
func BuildProducer() (bin string, cleanup func(), err error) {
	if bin := os.Getenv(ProducerBinEnv); bin != "" {
		return bin, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "dbsync-producer-bin")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "producer")
	build := exec.Command("go", "build", "-o", bin, "github.com/dbsync/dbsync/cmd/producer")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build producer: %w\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// MustBuildProducer is BuildProducer for TestMain: it exits on failure.
func MustBuildProducer() (bin string, cleanup func()) {
	bin, cleanup, err := BuildProducer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return bin, cleanup
}

// Env is one MariaDB, one NATS Streaming server and a producer data dir.
type Env struct {
	T  testing.TB
	DB *testenv.MariaDB
	// Broker is Stan or JetStream; Stan or NATS is the running server.
	Broker string
	Stan   *testenv.Stan
	NATS   *testenv.NATS
	Kafka  *testenv.Kafka
	Dir    string
	// HTTPAddr is where the producer serves /metrics, /livez and /readyz.
	HTTPAddr string
	// Cfg is written to Dir/config.json before each producer start.
	Cfg map[string]any
	bin string
}

func NewEnv(t testing.TB, bin string) *Env { return NewEnvBroker(t, bin, Stan) }

// Brokers the environment can run.
const (
	Stan      = "stan"
	JetStream = "jetstream"
	// Kafka is franz-go's in-process cluster (or DBSYNC_TEST_KAFKA's).
	Kafka = "kafka"
)

// NewEnvBroker starts MariaDB and the given broker (Stan or JetStream) and
// prepares a producer configuration for them.
func NewEnvBroker(t testing.TB, bin, broker string) *Env {
	t.Helper()
	return NewEnvWith(t, bin, broker, testenv.MariaDBOptions{})
}

// NewEnvWith is NewEnvBroker with MariaDB started with db.
func NewEnvWith(t testing.TB, bin, broker string, db testenv.MariaDBOptions) *Env {
	t.Helper()
	return newEnv(t, bin, broker, db, testenv.NATSOptions{})
}

// NewJetStreamEnv is NewEnvBroker(t, bin, JetStream) with the NATS server
// started with opts (TLS, authentication). The config gets no credentials
// or TLS settings: the test sets JetStream.Auth and JetStream.TLS.
func NewJetStreamEnv(t testing.TB, bin string, opts testenv.NATSOptions) *Env {
	t.Helper()
	return newEnv(t, bin, JetStream, testenv.MariaDBOptions{}, opts)
}

func newEnv(t testing.TB, bin, broker string, db testenv.MariaDBOptions, natsOpts testenv.NATSOptions) *Env {
	t.Helper()
	e := &Env{T: t, DB: testenv.StartMariaDB(t, db), Dir: t.TempDir(), bin: bin, Broker: broker}
	e.DB.CreateReplicationUser(t, "dbsync", "secret")
	e.Cfg = map[string]any{
		"Mysql":   map[string]any{"Host": e.DB.Host, "Port": strconv.Itoa(e.DB.Port), "Username": "dbsync", "Password": "secret", "HeartbeatPeriod": "1s", "ReadTimeout": "5s"},
		"Storage": map[string]any{"DaoName": "bolt", "PosKey": "key"},
		"Bolt":    map[string]any{"File": "pos.db", "Bucket": "pos"},
		"DataDir": e.Dir,
		"Log":     map[string]any{"Level": "debug"},
	}
	e.HTTPAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	e.Cfg["HTTP"] = map[string]any{"Listen": e.HTTPAddr}
	switch broker {
	case Stan:
		e.Stan = testenv.StartStan(t)
		e.Cfg["MQName"] = "stan"
		e.Cfg["Stan"] = map[string]any{"Host": "nats://" + e.Stan.Host, "Port": strconv.Itoa(e.Stan.Port), "ClusterID": e.Stan.ClusterID, "ClientID": "dbsync-test"}
	case JetStream:
		e.NATS = testenv.StartNATSWith(t, natsOpts)
		e.Cfg["MQName"] = "jetstream"
		e.Cfg["JetStream"] = map[string]any{"URL": e.NATS.URL(), "Stream": "DBSYNC"}
	case Kafka:
		e.Kafka = testenv.StartKafka(t, 1)
		e.Cfg["MQName"] = "kafka"
		e.Cfg["Kafka"] = map[string]any{"Brokers": e.Kafka.Brokers}
	default:
		t.Fatalf("e2e: unknown broker %q", broker)
	}
	return e
}

// jetStreamPrefix is the producer's default ProName with JetStream; the
// Env's methods take subjects without it ("db.table") for both brokers.
const jetStreamPrefix = "dbsync."

// Clone returns a second Env on the same servers, for a second producer:
// a copy of the config with a directory (DataDir) and an operations
// listener of its own.
func (e *Env) Clone(t testing.TB) *Env {
	t.Helper()
	b, err := json.Marshal(e.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := *e
	c.T, c.Dir, c.Cfg = t, t.TempDir(), nil
	if err := json.Unmarshal(b, &c.Cfg); err != nil {
		t.Fatal(err)
	}
	c.Cfg["DataDir"] = c.Dir
	c.HTTPAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	c.Cfg["HTTP"] = map[string]any{"Listen": c.HTTPAddr}
	return &c
}

// StopBroker stops the broker; StartBroker starts it again with its data.
func (e *Env) StopBroker() {
	if e.NATS != nil {
		e.NATS.Shutdown(e.T)
	} else {
		e.Stan.Shutdown(e.T)
	}
}

// StartBroker restarts the broker stopped by StopBroker.
func (e *Env) StartBroker() {
	if e.NATS != nil {
		e.NATS.Restart(e.T)
	} else {
		e.Stan.Restart(e.T)
	}
}

// Count returns how many messages the broker holds for subject ("db.table").
func (e *Env) Count(subject string) int {
	e.T.Helper()
	switch {
	case e.NATS != nil:
		return e.NATS.SubjectCount(e.T, "DBSYNC", jetStreamPrefix+subject)
	case e.Kafka != nil:
		return len(e.RawMessages(subject))
	}
	return e.Stan.ChannelCount(e.T, subject)
}

// Subjects lists the subjects the broker holds messages for.
func (e *Env) Subjects() []string {
	e.T.Helper()
	if e.NATS != nil {
		var out []string
		for _, s := range e.NATS.Subjects(e.T, "DBSYNC") {
			out = append(out, strings.TrimPrefix(s, jetStreamPrefix))
		}
		return out
	}
	return e.Stan.Channels(e.T)
}

// RawMessages returns the data of every message of subject, in order.
func (e *Env) RawMessages(subject string) [][]byte {
	e.T.Helper()
	switch {
	case e.NATS != nil:
		return e.NATS.ReadSubject(e.T, "DBSYNC", jetStreamPrefix+subject)
	case e.Kafka != nil:
		var out [][]byte
		for _, r := range e.Kafka.ReadTopic(e.T, mq.KafkaTopic(jetStreamPrefix+subject)) {
			out = append(out, r.Value)
		}
		return out
	}
	return e.Stan.ReadChannel(e.T, subject)
}

// Set changes one config key, "Section.Key" or "Key".
func (e *Env) Set(key string, value any) {
	if sec, k, ok := strings.Cut(key, "."); ok {
		m, _ := e.Cfg[sec].(map[string]any)
		if m == nil {
			m = map[string]any{}
			e.Cfg[sec] = m
		}
		m[k] = value
		return
	}
	e.Cfg[key] = value
}

func (e *Env) WriteConfig() string {
	e.T.Helper()
	b, err := json.MarshalIndent(e.Cfg, "", "  ")
	if err != nil {
		e.T.Fatal(err)
	}
	path := filepath.Join(e.Dir, "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		e.T.Fatal(err)
	}
	return path
}

// Proc is a running producer.
type Proc struct {
	t      testing.TB
	child  *testenv.Child
	stderr *testenv.Buffer
}

// Start runs the producer on the Env's config; extraEnv adds environment
// variables. The test's cleanup kills it if it still runs.
func (e *Env) Start(extraEnv ...string) *Proc {
	e.T.Helper()
	cmd := exec.Command(e.bin, "-config", e.WriteConfig())
	cmd.Env = append(os.Environ(), extraEnv...)
	p := &Proc{t: e.T, stderr: &testenv.Buffer{}}
	cmd.Stderr = p.stderr
	child, err := testenv.StartChild(cmd)
	if err != nil {
		e.T.Fatal(err)
	}
	p.child = child
	e.T.Cleanup(child.Kill)
	return p
}

// Output is what the producer wrote to stderr so far.
func (p *Proc) Output() string { return p.stderr.String() }

// Stop sends SIGTERM and returns the exit code.
func (p *Proc) Stop() int {
	p.t.Helper()
	p.child.Signal(syscall.SIGTERM)
	return p.Wait(60 * time.Second)
}

// Freeze suspends the process (SIGSTOP); Thaw resumes it.
func (p *Proc) Freeze() { p.child.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process (SIGCONT).
func (p *Proc) Thaw() { p.child.Signal(syscall.SIGCONT) }

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() { p.child.Kill() }

// Wait returns the exit code once the process ended.
func (p *Proc) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.child.Done():
	case <-time.After(timeout):
		p.child.Kill()
		p.t.Fatalf("producer did not exit within %s; stderr:\n%s", timeout, p.Output())
	}
	return p.child.ExitCode()
}

// PeakRSS is the process's peak resident set size (VmHWM) in bytes, -1
// when it cannot be read.
func (p *Proc) PeakRSS() int64 {
	rss, err := p.child.PeakRSS()
	if err != nil {
		return -1
	}
	return rss
}

// Checkpoint reads the bolt checkpoint (the producer must not be running).
func (e *Env) Checkpoint() (position.Position, error) {
	e.T.Helper()
	s, err := storage.OpenBolt(storage.BoltOptions{Path: filepath.Join(e.Dir, "pos.db"), Timeout: 5 * time.Second}, logrus.New())
	if err != nil {
		return position.Position{}, err
	}
	defer s.Close()
	return s.Get(context.Background())
}

// WaitFor polls until the subject holds at least n messages.
func (e *Env) WaitFor(subject string, n int, timeout time.Duration) {
	e.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := e.Count(subject)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("subject %s holds %d messages, want %d within %s", subject, got, n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitDistinct polls until the subject holds at least n distinct row
// changes (duplicates from replays not counted).
func (e *Env) WaitDistinct(subject string, n int, timeout time.Duration) {
	e.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if e.Count(subject) >= n {
			seen := map[string]bool{}
			for _, env := range e.Read(subject) {
				seen[env.ID] = true
			}
			if len(seen) >= n {
				return
			}
			if time.Now().After(deadline) {
				e.T.Fatalf("subject %s holds %d distinct changes, want %d within %s", subject, len(seen), n, timeout)
			}
		} else if time.Now().After(deadline) {
			e.T.Fatalf("subject %s holds fewer than %d messages after %s", subject, n, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Read returns the envelopes stored on subject, in order.
func (e *Env) Read(subject string) []*envelope.Envelope {
	e.T.Helper()
	var out []*envelope.Envelope
	for _, data := range e.RawMessages(subject) {
		env, err := envelope.Decode(data)
		if err != nil {
			e.T.Fatalf("subject %s: %v: %s", subject, err, data)
		}
		out = append(out, env)
	}
	return out
}

// IntField returns an integer column of a row image.
func IntField(t testing.TB, img map[string]json.RawMessage, col string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(string(img[col]), 10, 64)
	if err != nil {
		t.Fatalf("column %s = %s: %v", col, img[col], err)
	}
	return n
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Pid is the process id.
func (p *Proc) Pid() int { return p.child.Pid() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.child.Done() }

// WaitLog waits until the producer's log contains s; it fails the test when
// the producer exits first or 30s pass.
func WaitLog(t testing.TB, p *Proc, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Output(), s) {
		select {
		case <-p.Done():
			t.Fatalf("producer exited before logging %q: %v\n%s", s, p.child.ExitStatus(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer did not log %q within 30s:\n%s", s, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Load writes transactions of 1-10 rows to tables load.t0..t<n-1>, one writer
// per table, and remembers which ids committed (COMMIT returned nil).
type Load struct {
	tables    int
	mu        sync.Mutex
	committed [][]int64
	stop      chan struct{}
	wg        sync.WaitGroup
}

func StartLoad(t testing.TB, db *sql.DB, tables int) *Load {
	t.Helper()
	l := &Load{tables: tables, committed: make([][]int64, tables), stop: make(chan struct{})}
	for i := 0; i < tables; i++ {
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE IF NOT EXISTS wl.t%d (id BIGINT PRIMARY KEY, payload VARCHAR(64))", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < tables; i++ {
		// Ids go on after the table's rows (a load on a promoted replica
		// continues the one on the failed primary).
		var next int64
		if err := db.QueryRow(fmt.Sprintf("SELECT COALESCE(MAX(id), 0) + 1 FROM wl.t%d", i)).Scan(&next); err != nil {
			t.Fatal(err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				n := 1 + rand.IntN(10)
				tx, err := db.Begin()
				if err != nil {
					t.Errorf("begin: %v", err)
					return
				}
				for k := 0; k < n; k++ {
					if _, err := tx.Exec(fmt.Sprintf("INSERT INTO wl.t%d VALUES (?, ?)", i), next+int64(k), "payload"); err != nil {
						t.Errorf("insert: %v", err)
						_ = tx.Rollback()
						return
					}
				}
				if err := tx.Commit(); err != nil {
					t.Errorf("commit: %v", err)
					return
				}
				l.mu.Lock()
				for k := 0; k < n; k++ {
					l.committed[i] = append(l.committed[i], next+int64(k))
				}
				l.mu.Unlock()
				next += int64(n)
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
			}
		}()
	}
	return l
}

// Finish stops the writers and returns the committed ids per table.
func (l *Load) Finish() [][]int64 {
	close(l.stop)
	l.wg.Wait()
	return l.committed
}

// Command runs the producer binary with args (e.g. "checkpoint", "show")
// and this Env's config, and returns its exit code, stdout and stderr.
func (e *Env) Command(args ...string) (code int, stdout, stderr string) {
	e.T.Helper()
	path := e.WriteConfig()
	var full []string
	if len(args) > 0 && (args[0] == "checkpoint" || args[0] == "doctor" || args[0] == "snapshot") {
		n := 1
		if (args[0] == "checkpoint" || args[0] == "snapshot") && len(args) > 1 {
			n = 2
		}
		full = append(append(append(full, args[:n]...), "-config", path), args[n:]...)
	} else {
		full = append([]string{"-config", path}, args...)
	}
	cmd := exec.Command(e.bin, full...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		e.T.Fatalf("run producer %v: %v", full, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}
