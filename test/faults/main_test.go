package faults_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/dbsync/dbsync/test/faults"
)

// suite holds the binaries built once for the whole run and the scenario
// results for docs/reliability.md.
var suite *faults.Suite

func TestMain(m *testing.M) {
	s, err := faults.NewSuite()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	suite = s
	os.Exit(s.Run(m))
}
