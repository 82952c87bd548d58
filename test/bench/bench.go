// Package bench measures dbsync on this machine in one run: the source
// ceiling (go-mysql alone reading and decoding the binlog), the sink ceiling
// per broker (the project's asynchronous publisher), the producer end to end
// for bulk inserts and for single-row transactions with its peak RSS, the
// commit-to-delivery latency at a steady commit rate, the peak RSS of one
// very large transaction, and the sync command's throughput into Redis and
// PostgreSQL next to each target's own ceiling. Main reports medians of
// several runs as a table and as the Markdown of docs/benchmarks.md, with a
// description of the machine. cmd/bench is its command line.
//
// It starts its own MariaDB and brokers on free loopback ports (through
// test/testenv) and builds the producer (and the sync) from the current
// source first.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dbsync/dbsync/test/testenv"
)

// Options say what to measure and how often.
type Options struct {
	Rows        int
	Tx          int
	Runs        int
	Rate        float64
	Duration    time.Duration
	Brokers     []string
	Out         string
	SkipLatency bool
	SkipSink    bool
	BigRows     int
	// SnapshotRows is the size of the table the snapshot measurement
	// reads; 0 skips it.
	SnapshotRows int
	// Takeovers is how many times the active producer of a standby pair
	// is killed (0 skips it); LeaseTTL is their HA.LeaseTTL.
	Takeovers int
	LeaseTTL  time.Duration
	Writers   int
	Verbose   bool
	// ProfileDir, when set, is created and receives profiles of every
	// end-to-end run: the producer's CPU and allocations (from its pprof
	// endpoint) and this process's CPU (it runs the broker), over the same
	// window.
	ProfileDir string
	// SyncRows is the size of the table the sync measurement keeps in
	// Redis and PostgreSQL; 0 skips it.
	SyncRows int
}

// Main performs every measurement of opts, printing progress to stderr and
// the report to stdout; command is the command line the report names. It
// returns the exit status: 0 on success, 1 when a measurement fails (every
// server and producer is stopped first).
func Main(opts Options, command string, stdout, stderr io.Writer) int {
	b := &bench{opts: opts, began: time.Now(), stderr: stderr, command: command}
	logf := func(format string, a ...any) {}
	if opts.Verbose {
		logf = func(format string, a ...any) { fmt.Fprintf(stderr, "    "+format+"\n", a...) }
	}
	b.tb = newRootTB("bench", logf)

	// A fatal error on another goroutine exits the process; this one then
	// only waits for that.
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatalAbort); ok {
				select {}
			}
			b.tb.close()
			panic(r)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		sig := <-sigs
		cancel()
		b.tb.Fatalf("interrupted by %v", sig)
	}()

	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "bench: profile directory: %v\n", err)
			return 1
		}
	}
	report, err := b.run(ctx)
	if b.tb.exiting.Load() {
		select {} // a fatal error is cleaning up and exits the process
	}
	b.tb.close()
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, report)
	return 0
}

// bench is one run of the command.
type bench struct {
	opts    Options
	command string
	began   time.Time
	stderr  io.Writer
	tb      *benchTB

	bin     string
	syncBin string // cmd/sync, when SyncRows > 0
	db      *testenv.MariaDB
	mariadb string // the server's VERSION()
	meter   cpuMeter
	res     results
}

// progress prints a progress line with the time since the start.
func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.stderr, "[%6.1fs] %s\n", time.Since(b.began).Seconds(), fmt.Sprintf(format, args...))
}

// run performs every measurement and returns the text for stdout; it
// writes the Markdown report when -out is set.
func (b *bench) run(ctx context.Context) (string, error) {
	if busy, err := cpuBusy(time.Second); err == nil && busy > 0.2 {
		b.progress("WARNING: the CPUs are %s busy before the start: other work on this machine makes the numbers noisy", fmtPercent(busy))
	}
	b.progress("building the producer from source")
	bin, err := buildProducer(b.tb)
	if err != nil {
		return "", err
	}
	b.bin = bin
	if b.opts.SyncRows > 0 {
		b.progress("building the sync from source")
		if b.syncBin, err = buildSync(b.tb); err != nil {
			return "", err
		}
	}

	b.progress("starting MariaDB and writing the workloads")
	b.db = testenv.StartMariaDB(b.tb, testenv.MariaDBOptions{})
	b.db.CreateReplicationUser(b.tb, producerUser, producerPassword)
	if b.meter.mariadbPID = findProcess("--datadir=" + b.db.DataDir); b.meter.mariadbPID == 0 {
		b.progress("WARNING: MariaDB's process not found: its CPU time counts as other processes'")
	}
	if b.mariadb, err = serverVersion(ctx, b.db); err != nil {
		return "", err
	}
	if b.opts.SnapshotRows > 0 {
		began := time.Now()
		if err := writeSnapshotTable(ctx, b.tb, b.db, b.opts.SnapshotRows); err != nil {
			return "", err
		}
		b.progress("wrote the snapshot table (%s rows) in %s", fmtCount(float64(b.opts.SnapshotRows)), time.Since(began).Round(time.Millisecond))
	}
	if b.opts.SyncRows > 0 {
		began := time.Now()
		if err := writeSyncTable(ctx, b.tb, b.db, b.opts.SyncRows); err != nil {
			return "", err
		}
		b.progress("wrote the sync table (%s rows) in %s", fmtCount(float64(b.opts.SyncRows)), time.Since(began).Round(time.Millisecond))
	}
	bulk, tx, big, err := prepareWorkloads(ctx, b.tb, b.db, b.opts, b.progress)
	if err != nil {
		return "", err
	}
	workloads := []*workload{bulk, tx}
	if !b.opts.SkipSink {
		for _, w := range workloads {
			if w.Sample, err = takeSample(ctx, b.tb, b.bin, b.db, w); err != nil {
				return "", err
			}
			b.progress("took %d sample envelopes of %s", len(w.Sample), w.Name)
		}
	}

	first, err := b.meter.sample()
	if err != nil {
		return "", err
	}
	for run := 1; run <= b.opts.Runs; run++ {
		if err := b.measureRun(ctx, run, workloads); err != nil {
			return "", err
		}
	}
	if big != nil {
		if err := b.measureBig(ctx, big); err != nil {
			return "", err
		}
		workloads = append(workloads, big)
	}
	if b.opts.SnapshotRows > 0 {
		if err := b.measureSnapshot(ctx); err != nil {
			return "", err
		}
	}
	if b.opts.SyncRows > 0 {
		if err := b.measureSync(ctx); err != nil {
			return "", err
		}
	}
	if b.opts.Takeovers > 0 {
		r, err := measureTakeovers(ctx, b.tb, b.bin, b.db, b.opts.Takeovers, b.opts.LeaseTTL)
		if err != nil {
			return "", err
		}
		b.res.Takeovers = r
		b.progress("takeovers: %d, HA.LeaseTTL %s: median %s, max %s", len(r.Times), r.LeaseTTL, r.median().Round(time.Millisecond), r.max().Round(time.Millisecond))
	}
	last, err := b.meter.sample()
	if err != nil {
		return "", err
	}
	b.res.OtherCPU = otherShare(first, last, runtime.NumCPU())
	return b.report(workloads)
}

// measureRun performs one run, noting how much other processes used the
// CPUs meanwhile: the source ceiling of every workload, then
// per broker the sink ceilings, the end-to-end runs and the latency.
func (b *bench) measureRun(ctx context.Context, run int, workloads []*workload) error {
	before, err := b.meter.sample()
	if err != nil {
		return err
	}
	if err := b.measureRunOnce(ctx, run, workloads); err != nil {
		return err
	}
	after, err := b.meter.sample()
	if err != nil {
		return err
	}
	other := otherShare(before, after, runtime.NumCPU())
	b.res.Runs = append(b.res.Runs, runNoise{Run: run, OtherCPU: other})
	if other > 0.1 {
		b.progress("run %d: WARNING: other processes used %s of the CPUs during this run; its numbers are disturbed", run, fmtPercent(other))
	} else {
		b.progress("run %d: other processes used %s of the CPUs", run, fmtPercent(other))
	}
	return nil
}

// measureRunOnce performs the measurements of one run.
func (b *bench) measureRunOnce(ctx context.Context, run int, workloads []*workload) error {
	tb := b.tb.scope(fmt.Sprintf("run%d", run))
	defer tb.close()
	for _, w := range workloads {
		r, err := measureSource(ctx, b.db, w)
		if err != nil {
			return err
		}
		r.Run = run
		b.res.Source = append(b.res.Source, r)
		b.progress("run %d: source ceiling %-4s %s rows/s", run, w.Name, fmtCount(r.RowsPerSec()))
	}
	for _, broker := range b.opts.Brokers {
		if !b.opts.SkipSink {
			for _, w := range workloads {
				for _, streamed := range []bool{false, true} {
					r, err := measureSink(ctx, tb, broker, w, streamed)
					if err != nil {
						return err
					}
					r.Run = run
					b.res.Sink = append(b.res.Sink, r)
					b.progress("run %d: sink ceiling   %-4s %-9s %s msgs/s (%s)", run, w.Name, broker, fmtCount(r.MsgsPerSec()), sinkMode(streamed))
				}
				r, err := measureTogether(ctx, tb, b.db, broker, w)
				if err != nil {
					return err
				}
				r.Run = run
				b.res.Together = append(b.res.Together, r)
				b.progress("run %d: together       %-4s %-9s %s rows/s (source done in %s, sink in %s)", run, w.Name, broker,
					fmtCount(r.RowsPerSec()), r.Source.Round(time.Millisecond), r.Sink.Round(time.Millisecond))
			}
		}
		for _, w := range workloads {
			r, err := measureE2E(ctx, tb, b.bin, b.db, broker, w, b.opts.ProfileDir)
			if err != nil {
				return err
			}
			r.Run = run
			b.res.E2E = append(b.res.E2E, r)
			b.progress("run %d: end to end     %-4s %-9s %s rows/s (%s rows in %s, startup %s, %.1f rows per batch, producer CPU %.2f µs per row), peak RSS %.1f MiB",
				run, w.Name, broker, fmtCount(r.RowsPerSec()), fmtCount(float64(r.Rows)), r.Elapsed.Round(time.Millisecond),
				r.Startup.Round(time.Millisecond), r.RowsPerBatch, r.CPUPerRow, mib(r.PeakRSS))
		}
		if !b.opts.SkipLatency {
			r, err := measureLatency(ctx, tb, b.bin, b.db, broker, b.opts.Rate, b.opts.Duration, b.opts.ProfileDir)
			if err != nil {
				return err
			}
			r.Run = run
			b.res.Latency = append(b.res.Latency, r)
			b.progress("run %d: latency        %-9s %s commits at %s/s: p50 %s ms, p99 %s ms, max %s ms (ingress p50 %s ms, p99 %s ms)",
				run, broker, fmtCount(float64(r.Commits)), fmtCount(r.Rate), fmtMs(r.P50), fmtMs(r.P99), fmtMs(r.Max),
				fmtMaybeMs(r.IngressP50), fmtMaybeMs(r.IngressP99))
		}
	}
	return nil
}

// kafkaNote says what the Kafka rows measure.
const kafkaNote = "Kafka is franz-go's in-process cluster (kfake) in the bench's own process, not a Kafka server (none can be " +
	"installed here): its rows compare dbsync's Kafka path with that cluster's own ceiling on the same machine, and its latency " +
	"includes kfake's fetch scheduling. Issue 13's targets are the NATS brokers'."

// measureBig measures the big transaction once: its source ceiling and the
// producer end to end on NATS Streaming, with its peak RSS.
func (b *bench) measureBig(ctx context.Context, big *workload) error {
	src, err := measureSource(ctx, b.db, big)
	if err != nil {
		return err
	}
	b.res.BigSource = &src
	b.progress("big transaction: source ceiling %s rows/s", fmtCount(src.RowsPerSec()))
	e, err := measureE2E(ctx, b.tb, b.bin, b.db, BrokerStan, big, "")
	if err != nil {
		return err
	}
	b.res.BigE2E = &e
	b.progress("big transaction: end to end on stan %s rows/s (%s rows in %s), peak RSS %.1f MiB",
		fmtCount(e.RowsPerSec()), fmtCount(float64(e.Rows)), e.Elapsed.Round(time.Millisecond), mib(e.PeakRSS))
	return nil
}

// report renders the summary for stdout and writes the Markdown file.
func (b *bench) report(workloads []*workload) (string, error) {
	names := []string{}
	for _, w := range workloads {
		if w.Name != "big" {
			names = append(names, w.Name)
		}
	}
	summary := b.res.summarize(names, b.opts.Brokers)
	lat := b.res.summarizeLatency(b.opts.Brokers)
	var out strings.Builder
	fmt.Fprintf(&out, "\nThroughput (median of %d runs):\n\n%s", b.opts.Runs, throughputTable(summary))
	if len(lat) > 0 {
		fmt.Fprintf(&out, "\nLatency, single-row commits at %s/s for %s (median of %d runs):\n\n%s",
			fmtCount(b.opts.Rate), b.opts.Duration, b.opts.Runs, latencyTable(lat))
	}
	var snapTargets [][]string
	if b.res.Snapshot != nil {
		var measured string
		measured, snapTargets = snapshotTables(b.res.Snapshot)
		fmt.Fprintf(&out, "\nSnapshot of a %s-row table (once):\n\n%s", fmtCount(float64(b.res.Snapshot.Rows)), measured)
	}
	if r := b.res.Sync; r != nil {
		fmt.Fprintf(&out, "\nSync of a %s-row table into each target, next to the target's own ceiling (once):\n\n%s",
			fmtCount(float64(r.Rows)), syncResultTable(r))
	}
	if r := b.res.Takeovers; r != nil {
		fmt.Fprintf(&out, "\nStandby takeovers (%d, HA.LeaseTTL %s): median %s, max %s\n", len(r.Times), r.LeaseTTL,
			r.median().Round(time.Millisecond), r.max().Round(time.Millisecond))
	}
	fmt.Fprintf(&out, "\nTargets (issues 13 and 14):\n\n%s", targetsTable(summary, lat, snapTargets))
	if slices.Contains(b.opts.Brokers, BrokerKafka) {
		fmt.Fprintf(&out, "\n%s\n", kafkaNote)
	}
	fmt.Fprintf(&out, "\nOther processes used %s of the CPUs during the measurements (%s).\n",
		fmtPercent(b.res.OtherCPU), otherPerRun(b.res.Runs))

	if b.opts.Out != "" {
		doc := markdown(reportInput{
			Machine: describeMachine(b.mariadb), Command: b.command, Took: time.Since(b.began), Runs: b.opts.Runs,
			Workloads: workloads, Results: &b.res, Summary: summary, Latency: lat,
			Rate: b.opts.Rate, Duration: b.opts.Duration,
		})
		if err := os.WriteFile(b.opts.Out, []byte(doc), 0o644); err != nil {
			return "", fmt.Errorf("write the report: %w", err)
		}
		fmt.Fprintf(&out, "\nWrote %s (took %s).\n", b.opts.Out, time.Since(b.began).Round(time.Second))
	}
	return out.String(), nil
}
