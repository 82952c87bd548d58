package main

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// programTB lets test/testenv and test/e2e start their servers outside a
// test: it implements what they call (Helper, Logf, Errorf, Fatal, Fatalf,
// Cleanup, TempDir). The embedded interface is nil, so any other method
// panics, a bug here rather than a runtime condition. Errorf prints the
// message and marks the run failed; Fatal and Fatalf print it, run the
// cleanups not run yet (no server outlives the command, even when a
// cleanup fails) and exit 1.
type programTB struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func newProgramTB() *programTB { return &programTB{} }

func (*programTB) Helper() {}

func (*programTB) Name() string { return "dashshot" }

func (*programTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "dashshot: "+format+"\n", args...)
}

func (b *programTB) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "dashshot: "+format+"\n", args...)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failed = true
}

// Failed reports whether Errorf was called.
func (b *programTB) Failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed
}

func (b *programTB) Fatal(args ...any) { b.Fatalf("%s", fmt.Sprint(args...)) }

func (b *programTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "dashshot: "+format+"\n", args...)
	b.cleanup()
	os.Exit(1)
}

func (b *programTB) Cleanup(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanups = append(b.cleanups, f)
}

func (b *programTB) TempDir() string {
	dir, err := os.MkdirTemp("", "dashshot")
	if err != nil {
		b.Fatalf("temporary directory: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cleanup runs the cleanups not run yet, last registered first.
func (b *programTB) cleanup() {
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
		f()
	}
}
