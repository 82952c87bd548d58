package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binDirs are searched after PATH: daemons such as mariadbd live in sbin
// directories that a non-login PATH often lacks.
var binDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"}

// FreePort returns a TCP port on 127.0.0.1 that was free at the time of the
// call. It picks at random below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), so that no outgoing connection of any
// process can take the port, and falls back to a kernel-chosen port when that
// range is too small. The port is not reserved: another process may still
// take it before the caller binds it, so the Start helpers of this package
// retry with a new port when the first bind fails. It fails the test when no
// port can be had.
func FreePort(t testing.TB) int {
	t.Helper()
	const lowest = 10000
	if low := ephemeralPortLow(); low-lowest >= 1000 {
		for range 100 {
			port := lowest + rand.IntN(low-lowest)
			l, err := net.Listen("tcp", addr("127.0.0.1", port))
			if err != nil {
				continue
			}
			if err := l.Close(); err != nil {
				t.Fatalf("testenv: release probe port %d: %v", port, err)
			}
			return port
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port on 127.0.0.1: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("testenv: release probe port %d: %v", port, err)
	}
	return port
}

// ephemeralPortLow returns the first port of the kernel's ephemeral range,
// or 0 when it cannot be read (non-Linux).
func ephemeralPortLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return 0
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0
	}
	return low
}

// findBinary returns the path of the first of names found in PATH or in
// binDirs, or "" when none is installed.
func findBinary(names ...string) string {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range binDirs {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// mustFindBinary is findBinary that fails the test naming the Debian package
// that provides the binary.
func mustFindBinary(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	p := findBinary(names...)
	if p == "" {
		t.Fatalf("%s not found (looked in PATH and %s): install the %s package (scripts/test.sh does this)",
			names[0], strings.Join(binDirs, ", "), pkg)
	}
	return p
}

// shortTempDir returns a fresh directory with a short path under os.TempDir
// (t.TempDir paths embed the test name and can exceed the 107-byte limit of a
// unix socket path). It is removed at cleanup.
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("testenv: create temp dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: remove temp dir %s: %v", dir, err)
		}
	})
	return dir
}

// logTail returns the last n lines of the file at path, or a note saying why
// it could not be read.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	data = bytes.TrimRight(data, "\n")
	lines := strings.Split(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last %d lines of %s ---\n%s\n---", len(lines), path, strings.Join(lines, "\n"))
}

// process is a server child process whose exit is observed by a goroutine.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // result of cmd.Wait, valid once done is closed
}

// startProcess starts bin with args, its stdout and stderr appended to
// outPath. The child gets SIGKILL if the test binary dies first (Linux).
func startProcess(outPath, bin string, args ...string) (*process, error) {
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open output file %s: %w", outPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitStatus describes how the process ended; call only after exited.
func (p *process) exitStatus() string {
	if p.err == nil {
		return "exited with status 0"
	}
	return p.err.Error()
}

// stop sends sig and waits up to timeout for the process to exit, then kills
// it. It returns an error when sig did not stop the process in time.
func (p *process) stop(sig syscall.Signal, timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("pid %d did not exit within %s of signal %v; killed it", p.cmd.Process.Pid, timeout, sig)
}

// kill sends SIGKILL and waits for the exit.
func (p *process) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// addr joins host and port.
func addr(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
