//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// armed is parsed once from DBSYNC_FAILPOINT; test builds only, so the
// process-wide state is deliberate.
var (
	once   sync.Once
	target string
	after  int64 = 1
	hits   atomic.Int64
)

// Hit SIGKILLs the process at the configured hit of the named failpoint.
func Hit(name string) {
	once.Do(func() {
		spec := os.Getenv("DBSYNC_FAILPOINT")
		target = spec
		if n, c, ok := strings.Cut(spec, ":"); ok {
			target = n
			if v, err := strconv.ParseInt(c, 10, 64); err == nil && v > 0 {
				after = v
			}
		}
	})
	if name != target {
		return
	}
	if hits.Add(1) == after {
		fmt.Fprintf(os.Stderr, "failpoint %s hit %d: killing the process\n", name, after)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// Init applies test-only process settings from the environment:
// DBSYNC_RLIMIT_FSIZE=N limits the size of files the producer writes (a
// full disk, for the checkpoint file), with SIGXFSZ ignored so the write
// fails with EFBIG as on a full disk.
func Init() {
	v := os.Getenv("DBSYNC_RLIMIT_FSIZE")
	if v == "" {
		return
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "DBSYNC_RLIMIT_FSIZE=%q: %v\n", v, err)
		os.Exit(2)
	}
	signal.Ignore(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		fmt.Fprintf(os.Stderr, "setrlimit RLIMIT_FSIZE %d: %v\n", n, err)
		os.Exit(2)
	}
}
