//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
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
