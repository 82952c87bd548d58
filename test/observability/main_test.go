package observability

import (
	"fmt"
	"os"
	"testing"

	"github.com/dbsync/dbsync/test/e2e"
)

// Built once per test binary by TestMain.
var (
	repoRoot     string
	producerBin  string
	promtoolsBin string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = root
	bin, cleanup, err := e2e.BuildProducer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	producerBin = bin
	dir, err := os.MkdirTemp("", "dbsync-promtools")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if promtoolsBin, err = BuildPromtools(root, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
