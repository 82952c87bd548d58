package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dbsync/dbsync/internal/e2e"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dbsync/dbsync/internal/testenv"
	"github.com/dbsync/dbsync/pkg/position"
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

// producerSetup is a producer configuration in a fresh data directory:
// the benchmark server, one broker, the checkpoint in a bolt file,
// everything else at its default.
type producerSetup struct {
	bin  string
	dir  string
	path string // config.json
}

// newProducerSetup writes the configuration into a fresh directory of tb's
// scope. include restricts the published tables (Tables.Include); nil
// publishes all of them.
func newProducerSetup(tb *benchTB, bin string, db *testenv.MariaDB, br *broker, include []string) (*producerSetup, error) {
	dir := tb.TempDir()
	cfg := map[string]any{
		"Mysql":   map[string]any{"Host": db.Host, "Port": strconv.Itoa(db.Port), "Username": producerUser, "Password": producerPassword},
		"Storage": map[string]any{"DaoName": "bolt", "PosKey": "key"},
		"Bolt":    map[string]any{"File": "pos.db", "Bucket": "pos"},
		"DataDir": dir,
		"Log":     map[string]any{"Level": "info"},
		"HTTP":    map[string]any{"Listen": "127.0.0.1:" + strconv.Itoa(testenv.FreePort(tb))},
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
	return &producerSetup{bin: bin, dir: dir, path: path}, nil
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
	cmd     *exec.Cmd
	log     *syncBuffer
	started time.Time
	done    chan struct{}
	err     error // cmd.Wait's result, valid once done is closed
}

// start starts the producer with this configuration. It is killed at the
// scope's close if still running, and by the kernel if this command dies
// (Linux).
func (s *producerSetup) start(tb *benchTB) (*producerProc, error) {
	cmd := exec.Command(s.bin, "-config", s.path)
	p := &producerProc{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	cmd.SysProcAttr = childProcAttr()
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start producer %s: %w", s.bin, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p, nil
}

// exited reports whether the process has ended.
func (p *producerProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes an unexpected exit, with the end of the log.
func (p *producerProc) exitError() error {
	return fmt.Errorf("producer exited early (%v); its log ends with:\n%s", p.err, tail(p.log.String(), 30))
}

// hasLogged reports whether the producer's output contains s.
func (p *producerProc) hasLogged(s string) bool { return strings.Contains(p.log.String(), s) }

// waitLog waits until the producer logged s. It fails when the producer
// exits first or timeout passes.
func (p *producerProc) waitLog(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !p.hasLogged(s) {
		if p.exited() {
			return p.exitError()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("producer did not log %q within %s; its log ends with:\n%s", s, timeout, tail(p.log.String(), 30))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// peakRSS returns the process's peak resident set size (VmHWM of
// /proc/PID/status) in bytes.
func (p *producerProc) peakRSS() (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return -1, fmt.Errorf("read peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				break
			}
			return kb << 10, nil
		}
	}
	return -1, fmt.Errorf("read peak RSS: no VmHWM line in %s", path)
}

// stop sends SIGTERM and waits for a graceful exit (status 0); it kills the
// process after producerStopTimeout.
func (p *producerProc) stop() error {
	if p.exited() {
		return p.exitError()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal producer: %w", err)
	}
	select {
	case <-p.done:
	case <-time.After(producerStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("producer did not stop within %s of SIGTERM; its log ends with:\n%s", producerStopTimeout, tail(p.log.String(), 30))
	}
	if p.err != nil {
		return fmt.Errorf("producer stopped with %v; its log ends with:\n%s", p.err, tail(p.log.String(), 30))
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends b.
func (w *syncBuffer) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

// String returns everything written so far.
func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
