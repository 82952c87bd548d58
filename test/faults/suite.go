package faults

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// DocEnv is the environment variable that makes Suite.Run write
// docs/reliability.md: set it to "1" (make test-faults does). Without it
// the suite leaves the repository untouched.
const DocEnv = "DBSYNC_WRITE_RELIABILITY_DOC"

// Suite is what a fault-injection test binary shares: the binaries built
// once in TestMain and the scenario results for docs/reliability.md.
// Create it in TestMain with NewSuite and hand control to Run:
//
//	var suite *faults.Suite
//
//	func TestMain(m *testing.M) {
//		s, err := faults.NewSuite()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		suite = s
//		os.Exit(s.Run(m))
//	}
type Suite struct {
	// ProducerBin is cmd/producer built with -tags failpoints (static,
	// CGO_ENABLED=0).
	ProducerBin string
	// NATSBrokerBin and StanBrokerBin are cmd/natsbroker and
	// cmd/stanbroker.
	NATSBrokerBin string
	StanBrokerBin string

	dir   string
	began time.Time

	mu      sync.Mutex
	records []Record
	server  string // SELECT VERSION() of the first MariaDB
}

// Record is one scenario's result as docs/reliability.md lists it.
type Record struct {
	Result
	// Broker is the broker kind the producer published to.
	Broker      string
	Description string
	Duration    time.Duration
}

// NewSuite builds the producer (with the failpoints build tag) and the two
// broker commands into a temporary directory. It fails when go build does,
// with the compiler's output.
func NewSuite() (*Suite, error) {
	dir, err := os.MkdirTemp("", "dbsync-faults-bin")
	if err != nil {
		return nil, fmt.Errorf("faults: temp dir for binaries: %w", err)
	}
	const mod = "github.com/dbsync/dbsync/"
	build := exec.Command("go", "build", "-tags", "failpoints", "-o", dir+string(os.PathSeparator),
		mod+"cmd/producer", mod+"test/faults/cmd/natsbroker", mod+"test/faults/cmd/stanbroker")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("faults: go build -tags failpoints (producer, natsbroker, stanbroker): %w\n%s", err, out)
	}
	producer := filepath.Join(dir, "producer")
	if bin := os.Getenv(e2e.ProducerBinEnv); bin != "" {
		producer = bin // a build of another version, with -tags failpoints
	}
	return &Suite{
		ProducerBin:   producer,
		NATSBrokerBin: filepath.Join(dir, "natsbroker"),
		StanBrokerBin: filepath.Join(dir, "stanbroker"),
		dir:           dir,
		began:         time.Now(),
	}, nil
}

// brokerBin is the binary for a broker kind.
func (s *Suite) brokerBin(kind string) string {
	if kind == e2e.JetStream {
		return s.NATSBrokerBin
	}
	return s.StanBrokerBin
}

// StartBroker starts a broker process of kind (e2e.Stan or e2e.JetStream)
// on free ports with a fresh store, for scenarios that need one outside a
// Cluster.
func (s *Suite) StartBroker(t testing.TB, kind string) *Broker {
	t.Helper()
	return startBroker(t, s.brokerBin(kind), kind)
}

// Run runs the tests, then, when DocEnv is "1" and at least one scenario
// reported, writes docs/reliability.md at the module root; it removes the
// binaries and returns the exit code for os.Exit (1 when the tests passed
// but the document could not be written).
func (s *Suite) Run(m *testing.M) int {
	code := m.Run()
	defer os.RemoveAll(s.dir)
	if os.Getenv(DocEnv) != "1" || len(s.Records()) == 0 {
		return code
	}
	root, err := moduleRoot()
	if err == nil {
		path := filepath.Join(root, "docs", "reliability.md")
		if err = os.WriteFile(path, s.Doc(time.Now()), 0o644); err == nil {
			fmt.Printf("faults: wrote %s (%d scenarios)\n", path, len(s.Records()))
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: write docs/reliability.md: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// record adds a scenario result.
func (s *Suite) record(r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, r)
}

// Records returns the results reported so far, sorted by scenario name.
func (s *Suite) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]Record(nil), s.records...)
	sort.Slice(out, func(i, j int) bool { return out[i].Scenario < out[j].Scenario })
	return out
}

// noteServer remembers the MariaDB version for the document.
func (s *Suite) noteServer(t testing.TB, m *testenv.MariaDB) {
	s.mu.Lock()
	known := s.server != ""
	s.mu.Unlock()
	if known {
		return
	}
	var v string
	if err := m.DB(t).QueryRow("SELECT VERSION()").Scan(&v); err != nil {
		return
	}
	s.mu.Lock()
	s.server = v
	s.mu.Unlock()
}

// Doc renders docs/reliability.md from the records.
func (s *Suite) Doc(now time.Time) []byte {
	records := s.Records()
	s.mu.Lock()
	server := s.server
	s.mu.Unlock()
	var b bytes.Buffer
	pass := 0
	for _, r := range records {
		if r.OK {
			pass++
		}
	}
	fmt.Fprintf(&b, `# Reliability: fault-injection results

<!-- Generated by make test-faults (test/faults, %s=1); edit the generator, not this file. -->

dbsync promises that every committed row reaches the broker, in commit order per subject, and that a
failure causes at most an in-order replay of rows already delivered, never a gap, a reordering or a
garbled value. `+"`make test-faults`"+` checks that promise by breaking things under a steady write load: each
scenario starts MariaDB, a broker (NATS Streaming or NATS with JetStream, as a separate process so it can
be killed, stopped and frozen), optionally a TCP fault proxy (test/faultproxy) in front of MariaDB or
the broker, and the real producer binary (built with the failpoints build tag); one writer per table
inserts transactions of 1-20 rows (BIGINT, VARCHAR with non-ASCII text, INT, DECIMAL(10,2), DATETIME(6),
TINYINT(1), JSON, a nullable VARCHAR, BIGINT UNSIGNED), the scenario injects its fault, heals it, stops the
load and waits for the producer to catch up. The checker then compares what MariaDB holds with everything
the broker stored per subject:

- **committed** — rows MariaDB holds (a COMMIT that failed during a fault counts only if the row is there);
- **delivered** — committed rows the broker holds at least once; **lost** = committed - delivered, must be 0;
- **duplicates** — stored messages beyond each row's first delivery: allowed only as an exact, in-order
  replay of a suffix already delivered (what a restart from the checkpoint produces; on JetStream the
  Nats-Msg-Id de-duplication usually stores none);
- first deliveries must be in binlog order and commit order, and every value must equal the row as
  SELECTed afterwards, in the JSON form docs/envelope.md specifies for its type.

Last run: %s, %d of %d scenarios passed, the suite took %s.
Machine: %s. MariaDB %s.

Scenarios that also run an SDK consumer (pkg/client, with a bolt de-duplication file) say in the **SDK
consumer** column how many committed rows it handed over once, how many twice, and how many never.

| scenario | broker | committed | delivered | duplicates | lost | SDK consumer | result | time | what happens |
|---|---|---:|---:|---:|---:|---|---|---:|---|
`, DocEnv, now.UTC().Format("2006-01-02 15:04 MST"), pass, len(records), now.Sub(s.began).Round(time.Second), machine(), server)
	for _, r := range records {
		res := "PASS"
		if !r.OK {
			res = "**FAIL**: " + strings.ReplaceAll(r.Note, "|", "\\|")
		}
		broker := "NATS Streaming"
		if r.Broker == e2e.JetStream {
			broker = "JetStream"
		}
		consumer := ""
		if k := r.Consumer; k != nil {
			consumer = fmt.Sprintf("%d once, %d twice, %d lost", k.HandedOver, k.Duplicates, k.Lost)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s | %s | %s | %s |\n", r.Scenario, broker, r.Committed, r.Delivered,
			r.Duplicates, r.Lost, consumer, res, r.Duration.Round(time.Second), strings.ReplaceAll(r.Description, "|", "\\|"))
	}
	fmt.Fprintf(&b, `
Run it with `+"`make test-faults`"+`; `+"`go test ./test/faults/`"+` runs the same scenarios without rewriting
this file. Each scenario also prints its line as
`+"`scenario=<name> committed=N delivered=N duplicates=N lost=N result=PASS|FAIL`"+`. The harness
(test/faults) and how to add a scenario are described in its package documentation
(`+"`go doc ./test/faults`"+`).
`)
	return b.Bytes()
}

// machine describes the host: CPU model, cores, kernel, Go version.
func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := runtime.GOOS
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(data))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s", cpu, runtime.NumCPU(), kernel, runtime.Version())
}

// moduleRoot finds the directory holding go.mod, from the working
// directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
