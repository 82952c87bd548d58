package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dbsync/dbsync/test/e2e"

	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// Producer credentials: the replication user created on the benchmark
// server.
const (
	producerUser     = "dbsync"
	producerPassword = "secret"
)

// producerStopTimeout bounds a graceful stop (SIGTERM) of the producer.
const producerStopTimeout = 60 * time.Second

// buildProducer builds cmd/producer from the current source the way the
// Dockerfile does (static, CGO_ENABLED=0) into a directory of tb's scope;
// with e2e.ProducerBinEnv set it measures that binary instead (another
// build, to compare).
func buildProducer(tb *benchTB) (string, error) {
	if bin := os.Getenv(e2e.ProducerBinEnv); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(tb.TempDir(), "producer")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/dbsync/dbsync/cmd/producer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/producer: %w\n%s", err, out)
	}
	return bin, nil
}

// natsBroker builds, once per tree, the command that runs the project's
// NATS server with JetStream in a process of its own
// (test/faults/cmd/natsbroker), built like the producer.
func (b *benchTB) natsBroker() (string, error) {
	b.natsOnce.Do(func() {
		bin := filepath.Join(b.TempDir(), "natsbroker")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/dbsync/dbsync/test/faults/cmd/natsbroker")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.natsErr = fmt.Errorf("go build test/faults/cmd/natsbroker: %w\n%s", err, out)
			return
		}
		b.natsBin = bin
	})
	return b.natsBin, b.natsErr
}

// producerSetup is a producer configuration in a fresh data directory:
// the benchmark server, one broker, the checkpoint in a bolt file,
// everything else at its default.
type producerSetup struct {
	bin  string
	dir  string
	path string // config.json
	// httpAddr is the operations listener's address.
	httpAddr string
}

// newProducerSetup writes the configuration into a fresh directory of tb's
// scope. include restricts the published tables (Tables.Include); nil
// publishes all of them.
func newProducerSetup(tb *benchTB, bin string, db *testenv.MariaDB, br *broker, include []string, pprof bool) (*producerSetup, error) {
	dir := tb.TempDir()
	httpAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(tb))
	cfg := map[string]any{
		"Mysql":   map[string]any{"Host": db.Host, "Port": strconv.Itoa(db.Port), "Username": producerUser, "Password": producerPassword},
		"Storage": map[string]any{"DaoName": "bolt", "PosKey": "key"},
		"Bolt":    map[string]any{"File": "pos.db", "Bucket": "pos"},
		"DataDir": dir,
		"Log":     map[string]any{"Level": "info"},
		"HTTP":    map[string]any{"Listen": httpAddr, "Pprof": pprof},
	}
	maps.Copy(cfg, br.producerConfig())
	if include != nil {
		cfg["Tables"] = map[string]any{"Include": include}
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode producer config: %w", err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("write producer config: %w", err)
	}
	return &producerSetup{bin: bin, dir: dir, path: path, httpAddr: httpAddr}, nil
}

// setCheckpoint runs `producer checkpoint set -config PATH FILE POS`.
func (s *producerSetup) setCheckpoint(ctx context.Context, pos position.Position) error {
	cmd := exec.CommandContext(ctx, s.bin, "checkpoint", "set", "-config", s.path, pos.File, strconv.FormatUint(uint64(pos.Pos), 10))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("producer checkpoint set %s %d: %w\n%s", pos.File, pos.Pos, err, out)
	}
	return nil
}

// producerProc is a running producer.
type producerProc struct {
	child   *testenv.Child
	log     *testenv.Buffer
	started time.Time
}

// start starts the producer with this configuration. It is killed at the
// scope's close if still running, and by the kernel if this command dies
// (Linux).
func (s *producerSetup) start(tb *benchTB) (*producerProc, error) {
	cmd := exec.Command(s.bin, "-config", s.path)
	p := &producerProc{log: &testenv.Buffer{}}
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	p.started = time.Now()
	child, err := testenv.StartChild(cmd)
	if err != nil {
		return nil, fmt.Errorf("start producer: %w", err)
	}
	p.child = child
	tb.Cleanup(child.Kill)
	return p, nil
}

// exitError describes an unexpected exit, with the end of the log.
func (p *producerProc) exitError() error {
	return fmt.Errorf("producer exited early (%s); its log ends with:\n%s", p.child.ExitStatus(), tail(p.log.String(), 30))
}

// hasLogged reports whether the producer's output contains s.
func (p *producerProc) hasLogged(s string) bool { return strings.Contains(p.log.String(), s) }

// waitLog waits until the producer logged s. It fails when the producer
// exits first or timeout passes.
func (p *producerProc) waitLog(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !p.hasLogged(s) {
		if p.child.Exited() {
			return p.exitError()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("producer did not log %q within %s; its log ends with:\n%s", s, timeout, tail(p.log.String(), 30))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// stop sends SIGTERM and waits for a graceful exit (status 0); it kills the
// process after producerStopTimeout.
func (p *producerProc) stop() error {
	if p.child.Exited() {
		return p.exitError()
	}
	if err := p.child.Stop(syscall.SIGTERM, producerStopTimeout); err != nil {
		return fmt.Errorf("producer: %w; its log ends with:\n%s", err, tail(p.log.String(), 30))
	}
	if err := p.child.Err(); err != nil {
		return fmt.Errorf("producer stopped with %v; its log ends with:\n%s", err, tail(p.log.String(), 30))
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
