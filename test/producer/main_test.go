package producer_test

import (
	"os"
	"testing"

	"github.com/dbsync/dbsync/test/e2e"
)

// producerBin is the producer binary under test, built once per test run.
var producerBin string

func TestMain(m *testing.M) {
	bin, cleanup := e2e.MustBuildProducer()
	producerBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func newEnv(t testing.TB) *e2e.Env { return e2e.NewEnv(t, producerBin) }
