package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child is a child process whose exit a goroutine observes. Started by
// StartChild, it gets SIGKILL if the test binary dies first (Linux), so no
// server or producer outlives a test run.
type Child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, valid once done is closed
}

// StartChild starts cmd (its Stdout and Stderr already set, or nil); it
// sets cmd.SysProcAttr.
func StartChild(cmd *exec.Cmd) (*Child, error) {
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	c := &Child{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// StartChildLogging starts bin with args, its stdout and stderr appended to
// the file at outPath.
func StartChildLogging(outPath, bin string, args ...string) (*Child, error) {
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open output file %s: %w", outPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	c, err := StartChild(cmd)
	if err != nil {
		_ = out.Close()
		return nil, err
	}
	go func() { <-c.done; _ = out.Close() }()
	return c, nil
}

// Done is closed when the process has exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exited reports whether the process has exited.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Err is cmd.Wait's result; call only after Done.
func (c *Child) Err() error { return c.err }

// ExitCode is the exit code (-1 when killed by a signal); call only after
// Done.
func (c *Child) ExitCode() int { return c.cmd.ProcessState.ExitCode() }

// ExitStatus describes how the process ended; call only after Done.
func (c *Child) ExitStatus() string {
	if c.err == nil {
		return "exited with status 0"
	}
	return c.err.Error()
}

// Pid is the process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Signal sends sig; a process that is gone is no error.
func (c *Child) Signal(sig syscall.Signal) error {
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v to pid %d: %w", sig, c.cmd.Process.Pid, err)
	}
	return nil
}

// Stop sends sig and waits up to timeout for the process to exit, then
// kills it. It returns an error when sig did not stop the process in time.
func (c *Child) Stop(sig syscall.Signal, timeout time.Duration) error {
	if c.Exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal pid %d: %w", c.cmd.Process.Pid, err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
	}
	c.Kill()
	return fmt.Errorf("pid %d did not exit within %s of signal %v; killed it", c.cmd.Process.Pid, timeout, sig)
}

// Kill sends SIGKILL and waits for the exit.
func (c *Child) Kill() {
	if c.Exited() {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Buffer collects a child's output while the test reads it: a bytes.Buffer
// safe for concurrent Write and String.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// PeakRSS returns the process's peak resident set size (VmHWM of
// /proc/PID/status) in bytes; Linux only.
func (c *Child) PeakRSS() (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", c.Pid())
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
