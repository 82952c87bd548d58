package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// benchTB adapts testing.TB for test/testenv outside a test. It
// implements what testenv calls (Helper, Logf, Errorf, Fatalf, Cleanup,
// TempDir, Name, ...); the embedded interface is nil, so any other method
// panics, which would be a bug here rather than a runtime condition.
//
// benchTBs form a tree: scope returns a child whose cleanups run when it is
// closed, or earlier, when its parent is closed. Fatalf anywhere prints the
// message, runs every cleanup of the whole tree (last registered first) and
// exits with status 1, so no server or producer outlives the command.
type benchTB struct {
	testing.TB

	name string
	root *benchTB // the tree's root; itself for the root
	logf func(format string, args ...any)

	mu       sync.Mutex
	cleanups []func()
	failed   atomic.Bool

	// exiting is set (on the root) once a fatal error started the exit.
	exiting atomic.Bool

	// natsOnce builds (on the root) the NATS server command of the
	// external JetStream broker: natsBin, or natsErr.
	natsOnce sync.Once
	natsBin  string
	natsErr  error
}

// fatalAbort is the panic value Fatalf raises when an exit is already in
// progress: it abandons the caller (a cleanup, or a goroutine racing the
// exit) while the first fatal error finishes the cleanups and exits.
type fatalAbort struct{}

// newRootTB returns the root of a benchTB tree. logf receives testenv's log
// lines; nil discards them.
func newRootTB(name string, logf func(format string, args ...any)) *benchTB {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	b := &benchTB{name: name, logf: logf}
	b.root = b
	return b
}

// scope returns a child benchTB whose cleanups run at its close, or at the
// parent's close if that comes first.
func (b *benchTB) scope(name string) *benchTB {
	c := &benchTB{name: b.name + "/" + name, root: b.root, logf: b.logf}
	b.Cleanup(c.close)
	return c
}

// close runs the cleanups registered so far, last first. A cleanup that
// panics is reported and the others still run. Closing twice does nothing
// more.
func (b *benchTB) close() {
	for {
		b.mu.Lock()
		n := len(b.cleanups)
		if n == 0 {
			b.mu.Unlock()
			return
		}
		f := b.cleanups[n-1]
		b.cleanups = b.cleanups[:n-1]
		b.mu.Unlock()
		runCleanup(b.name, f)
	}
}

// runCleanup runs f, reporting a panic instead of propagating it.
func runCleanup(name string, f func()) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if _, ok := r.(fatalAbort); !ok {
			fmt.Fprintf(os.Stderr, "bench: cleanup of %s panicked: %v\n", name, r)
		}
	}()
	f()
}

// fatal prints msg, runs every cleanup of the tree and exits 1. When an exit
// is already in progress it panics with fatalAbort instead (recovered by
// runCleanup and by main).
func (b *benchTB) fatal(msg string) {
	fmt.Fprintf(os.Stderr, "bench: FATAL (%s): %s\n", b.name, strings.TrimRight(msg, "\n"))
	b.failed.Store(true)
	r := b.root
	if !r.exiting.CompareAndSwap(false, true) {
		panic(fatalAbort{})
	}
	r.close()
	os.Exit(1)
}

// Helper does nothing: there is no test output to attribute lines in.
func (b *benchTB) Helper() {}

// Name returns the scope's path, e.g. "bench/run1/e2e-bulk-stan".
func (b *benchTB) Name() string { return b.name }

// Context returns a background context: a benchTB is never cancelled by a
// test framework (interrupts go through Fatalf).
func (b *benchTB) Context() context.Context { return context.Background() }

// Log hands args to the log function.
func (b *benchTB) Log(args ...any) { b.logf("%s", fmt.Sprint(args...)) }

// Logf hands a formatted line to the log function.
func (b *benchTB) Logf(format string, args ...any) { b.logf(format, args...) }

// Error prints args to stderr and marks the scope failed.
func (b *benchTB) Error(args ...any) { b.Errorf("%s", fmt.Sprint(args...)) }

// Errorf prints a formatted error to stderr and marks the scope failed.
func (b *benchTB) Errorf(format string, args ...any) {
	b.failed.Store(true)
	fmt.Fprintf(os.Stderr, "bench: error (%s): %s\n", b.name, fmt.Sprintf(format, args...))
}

// Fail marks the scope failed.
func (b *benchTB) Fail() { b.failed.Store(true) }

// Failed reports whether Error, Errorf or Fail was called on this scope.
func (b *benchTB) Failed() bool { return b.failed.Load() }

// FailNow ends the command like Fatalf.
func (b *benchTB) FailNow() { b.fatal("FailNow called") }

// Fatal ends the command like Fatalf.
func (b *benchTB) Fatal(args ...any) { b.fatal(fmt.Sprint(args...)) }

// Fatalf prints the message, runs every cleanup and exits with status 1.
func (b *benchTB) Fatalf(format string, args ...any) { b.fatal(fmt.Sprintf(format, args...)) }

// Cleanup registers f to run at the scope's close, before the cleanups
// registered earlier.
func (b *benchTB) Cleanup(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanups = append(b.cleanups, f)
}

// TempDir creates a fresh directory under os.TempDir, removed at the
// scope's close. It ends the command when the directory cannot be created.
func (b *benchTB) TempDir() string {
	dir, err := os.MkdirTemp("", "dbsync-bench-")
	if err != nil {
		b.Fatalf("create temp dir: %v", err)
	}
	b.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			b.Errorf("remove temp dir %s: %v", dir, err)
		}
	})
	return dir
}
