package testenv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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

// addr joins host and port.
func addr(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
