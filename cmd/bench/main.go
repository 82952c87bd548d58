// Command bench measures dbsync on this machine in one run (package
// test/bench does the work): the source ceiling (go-mysql alone reading and
// decoding the binlog), the sink ceiling per broker (the project's
// asynchronous publisher), the producer end to end for bulk inserts and for
// single-row transactions with its peak RSS, the commit-to-delivery latency
// at a steady commit rate, the peak RSS of one very large transaction, and
// the sync command's throughput into Redis and PostgreSQL next to each
// target's own ceiling (pipelined HSETs, batched upserts). It reports medians of several runs as a table on stdout and in
// docs/benchmarks.md, with a description of the machine.
//
//	go run ./cmd/bench [-rows N] [-tx N] [-runs K] [-rate R] [-duration D]
//	                   [-brokers stan,jetstream,jetstream-embedded,kafka] [-out docs/benchmarks.md] ...
//
// It starts its own MariaDB and brokers on free loopback ports and builds
// the producer and the sync from the current source first. Progress goes to stderr. Exit
// status: 0 on success, 1 when a measurement fails (every server and
// producer is stopped first), 2 for bad flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dbsync/dbsync/test/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the flags and runs the measurements; it returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	return bench.Main(opts, strings.TrimSpace("go run ./cmd/bench "+strings.Join(args, " ")), stdout, stderr)
}

// parseFlags parses args into options, naming the flag of any invalid
// value.
func parseFlags(args []string, stderr io.Writer) (bench.Options, error) {
	var o bench.Options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Rows, "rows", 500_000, "rows of the bulk workload (multi-row INSERTs of 1,000 rows)")
	fs.IntVar(&o.Tx, "tx", 200_000, "single-row transactions of the transactions workload (enough that the producer's startup, about 0.1s, is a small part of its end-to-end time)")
	fs.IntVar(&o.Runs, "runs", 3, "runs of every measurement; the report shows medians")
	fs.Float64Var(&o.Rate, "rate", 1000, "commits per second of the latency measurement")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long the latency measurement writes")
	fs.StringVar(&o.ProfileDir, "profile", "", "write profiles (CPU and allocations of the producer, CPU of the broker's process) of every end-to-end run lasting over 3s into this directory (the directory is created)")
	brokers := fs.String("brokers", strings.Join(bench.Brokers, ","), "comma-separated brokers to measure: "+strings.Join(bench.Brokers, ", ")+" (JetStream in a server process of its own, or embedded in the producer)")
	fs.StringVar(&o.Out, "out", "docs/benchmarks.md", "Markdown report to write (\"\" for none)")
	fs.BoolVar(&o.SkipLatency, "skip-latency", false, "skip the latency measurement")
	fs.BoolVar(&o.SkipSink, "skip-sink", false, "skip the sink ceiling")
	big := fs.Bool("big", true, "also measure the peak RSS of one big transaction (NATS Streaming, once)")
	fs.IntVar(&o.BigRows, "big-rows", 1_000_000, "rows of the big transaction")
	fs.IntVar(&o.SnapshotRows, "snapshot-rows", 1_000_000, "rows of the table whose snapshot is measured (once per broker); 0 skips it")
	fs.IntVar(&o.Takeovers, "takeovers", 10, "times the active producer of a standby pair (NATS checkpoint store, HA.Standby) is killed; 0 skips it")
	fs.IntVar(&o.SyncRows, "sync-rows", 100_000, "rows of the table the sync command keeps in Redis and in PostgreSQL, measured next to each target's own ceiling (once); 0 skips it")
	fs.DurationVar(&o.LeaseTTL, "lease-ttl", 5*time.Second, "HA.LeaseTTL of the standby pair")
	fs.IntVar(&o.Writers, "writers", 4, "connections writing the single-row transactions")
	fs.BoolVar(&o.Verbose, "v", false, "print the test servers' log lines")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q: bench takes only flags", fs.Args())
	}
	if !*big {
		o.BigRows = 0
	}
	var errs []error
	for _, b := range strings.Split(*brokers, ",") {
		switch b = strings.TrimSpace(b); b {
		case bench.BrokerStan, bench.BrokerJetStream, bench.BrokerJetStreamEmbedded, bench.BrokerKafka:
			o.Brokers = append(o.Brokers, b)
		case "":
		default:
			errs = append(errs, fmt.Errorf("-brokers: unknown broker %q; use %s", b, strings.Join(bench.Brokers, ", ")))
		}
	}
	if len(o.Brokers) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("-brokers: no broker given; use %s", strings.Join(bench.Brokers, ", ")))
	}
	for _, f := range []struct {
		name  string
		value float64
	}{{"-rows", float64(o.Rows)}, {"-tx", float64(o.Tx)}, {"-runs", float64(o.Runs)}, {"-rate", o.Rate},
		{"-duration", o.Duration.Seconds()}, {"-writers", float64(o.Writers)}} {
		if f.value <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", f.name, f.value))
		}
	}
	if o.Takeovers < 0 || o.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("-takeovers must not be negative and -lease-ttl at least 1s, got %d and %s", o.Takeovers, o.LeaseTTL))
	}
	if o.SnapshotRows < 0 {
		errs = append(errs, fmt.Errorf("-snapshot-rows must not be negative, got %d", o.SnapshotRows))
	}
	if o.SyncRows < 0 {
		errs = append(errs, fmt.Errorf("-sync-rows must not be negative, got %d", o.SyncRows))
	}
	if o.BigRows < 0 {
		errs = append(errs, fmt.Errorf("-big-rows must not be negative, got %d", o.BigRows))
	}
	return o, errors.Join(errs...)
}
