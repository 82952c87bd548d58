package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The targets, as ratios to the ceilings measured in the same run (an
// absolute rate moves with the machine), and latency at a fixed rate.
const (
	// targetBulkFraction is end to end over the lower of the source and
	// sink ceilings, bulk inserts, every broker.
	targetBulkFraction = 0.85
	// targetTxFraction is end to end over the source ceiling, single-row
	// transactions, every broker.
	targetTxFraction  = 0.8
	targetLatencyRate = 1000
	targetP99         = 5 * time.Millisecond
	targetBigRSS      = 100 << 20
)

// results collects every measurement of a benchmark command.
type results struct {
	Source []sourceResult
	Sink   []sinkResult
	// Together are the source and sink ceilings run at the same time.
	Together []togetherResult
	E2E      []e2eResult
	Latency  []latencyResult
	// BigSource and BigE2E are the one-off measurements of the big
	// transaction (nil when not run).
	BigSource *sourceResult
	BigE2E    *e2eResult
	// Snapshot is the one-off snapshot measurement (nil when not run).
	Snapshot *snapshotResult
	// Takeovers is the standby takeover measurement (nil when not run).
	Takeovers *takeoverResult
	// Sync is the one-off measurement of the sync command (nil when not
	// run).
	Sync *syncResult
	// Runs says how much other processes disturbed each run; OtherCPU is
	// the same over all measurements.
	Runs     []runNoise
	OtherCPU float64
}

// runNoise is the share of the machine's CPUs that other processes used
// during one run (0 = undisturbed).
type runNoise struct {
	Run      int
	OtherCPU float64
}

// otherPerRun lists the runs' shares, e.g. "run 1: 2%, run 2: 31%".
func otherPerRun(runs []runNoise) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = fmt.Sprintf("run %d: %s", r.Run, fmtPercent(r.OtherCPU))
	}
	return strings.Join(parts, ", ")
}

// summaryRow is one row of the throughput table: medians over the runs,
// NaN where nothing was measured.
type summaryRow struct {
	Workload, Broker string
	// Rows is the workload's row count (set for the big transaction).
	Rows              int
	Source, Sink, E2E float64 // rows/s, msgs/s, rows/s
	// SinkStreamed is the sink ceiling with one Publish of every message.
	SinkStreamed float64
	// Together is the source and the streamed sink ceilings run at the
	// same time (rows/s): the most end to end can reach on the machine.
	Together   float64
	PeakRSSMiB float64
}

// SinkCeiling is the higher of the two sink measurements (batches of
// 1,024, one stream): the most the broker took; NaN when neither was
// measured.
func (s summaryRow) SinkCeiling() float64 {
	switch {
	case math.IsNaN(s.SinkStreamed):
		return s.Sink
	case math.IsNaN(s.Sink):
		return s.SinkStreamed
	}
	return math.Max(s.Sink, s.SinkStreamed)
}

// LowerCeiling is min(source ceiling, sink ceiling); NaN when either is
// unknown.
func (s summaryRow) LowerCeiling() float64 {
	sink := s.SinkCeiling()
	if math.IsNaN(s.Source) || math.IsNaN(sink) {
		return math.NaN()
	}
	return math.Min(s.Source, sink)
}

// Fraction is end to end as a fraction of the lower ceiling.
func (s summaryRow) Fraction() float64 { return ratio(s.E2E, s.LowerCeiling()) }

// summarize returns one row per workload and broker, in the given orders,
// then the big transaction's row when it was measured.
func (r *results) summarize(workloads, brokers []string) []summaryRow {
	var rows []summaryRow
	for _, w := range workloads {
		var src []float64
		for _, s := range r.Source {
			if s.Workload == w {
				src = append(src, s.RowsPerSec())
			}
		}
		for _, b := range brokers {
			row := summaryRow{Workload: w, Broker: b, Source: median(src)}
			var sink, streamed, e2e, rss []float64
			for _, s := range r.Sink {
				switch {
				case s.Workload != w || s.Broker != b:
				case s.Streamed:
					streamed = append(streamed, s.MsgsPerSec())
				default:
					sink = append(sink, s.MsgsPerSec())
				}
			}
			for _, e := range r.E2E {
				if e.Workload == w && e.Broker == b {
					e2e = append(e2e, e.RowsPerSec())
					rss = append(rss, mib(e.PeakRSS))
				}
			}
			var together []float64
			for _, t := range r.Together {
				if t.Workload == w && t.Broker == b {
					together = append(together, t.RowsPerSec())
				}
			}
			row.Sink, row.SinkStreamed, row.E2E, row.PeakRSSMiB = median(sink), median(streamed), median(e2e), median(rss)
			row.Together = median(together)
			rows = append(rows, row)
		}
	}
	if r.BigE2E != nil {
		row := summaryRow{Workload: r.BigE2E.Workload, Broker: r.BigE2E.Broker, Rows: r.BigE2E.Rows, Source: math.NaN(), Sink: math.NaN(),
			SinkStreamed: math.NaN(), Together: math.NaN(), E2E: r.BigE2E.RowsPerSec(), PeakRSSMiB: mib(r.BigE2E.PeakRSS)}
		if r.BigSource != nil {
			row.Source = r.BigSource.RowsPerSec()
		}
		rows = append(rows, row)
	}
	return rows
}

// latencySummary is the median over runs of one broker's latency numbers.
type latencySummary struct {
	Broker        string
	Commits       int
	Rate          float64
	P50, P99, Max time.Duration
	// IngressP50 and IngressP99 are -1 when not measured.
	IngressP50, IngressP99 time.Duration
}

// summarizeLatency returns one row per broker that has latency results.
func (r *results) summarizeLatency(brokers []string) []latencySummary {
	var out []latencySummary
	for _, b := range brokers {
		var rate, p50, p99, mx, in50, in99 []float64
		commits := 0
		for _, l := range r.Latency {
			if l.Broker != b {
				continue
			}
			commits = l.Commits
			rate = append(rate, l.Rate)
			p50 = append(p50, float64(l.P50))
			p99 = append(p99, float64(l.P99))
			mx = append(mx, float64(l.Max))
			if l.IngressP99 >= 0 {
				in50 = append(in50, float64(l.IngressP50))
				in99 = append(in99, float64(l.IngressP99))
			}
		}
		if len(rate) == 0 {
			continue
		}
		out = append(out, latencySummary{Broker: b, Commits: commits, Rate: median(rate),
			P50: time.Duration(median(p50)), P99: time.Duration(median(p99)), Max: time.Duration(median(mx)),
			IngressP50: medianDuration(in50), IngressP99: medianDuration(in99)})
	}
	return out
}

// medianDuration is median for durations, -1 when there are none.
func medianDuration(xs []float64) time.Duration {
	m := median(xs)
	if math.IsNaN(m) {
		return -1
	}
	return time.Duration(m)
}

// fmtMaybeMs is fmtMs, or notMeasured for a negative duration.
func fmtMaybeMs(d time.Duration) string {
	if d < 0 {
		return notMeasured
	}
	return fmtMs(d)
}

// throughputTable renders the summary rows.
func throughputTable(rows []summaryRow) string {
	cols := []column{{Title: "workload"}, {Title: "broker"}, {Title: "source ceiling rows/s", Right: true},
		{Title: "sink, batches msgs/s", Right: true}, {Title: "sink, one stream msgs/s", Right: true},
		{Title: "together rows/s", Right: true}, {Title: "end to end rows/s", Right: true},
		{Title: "e2e / min(ceilings)", Right: true}, {Title: "e2e / together", Right: true}, {Title: "peak RSS MiB", Right: true}}
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = []string{r.Workload, r.Broker, fmtCount(r.Source), fmtCount(r.Sink), fmtCount(r.SinkStreamed), fmtCount(r.Together),
			fmtCount(r.E2E), fmtFloat(r.Fraction(), 2), fmtFloat(ratio(r.E2E, r.Together), 2), fmtFloat(r.PeakRSSMiB, 1)}
	}
	return formatTable(cols, cells)
}

// latencyTable renders the latency summaries.
func latencyTable(rows []latencySummary) string {
	cols := []column{{Title: "broker"}, {Title: "commits", Right: true}, {Title: "commits/s", Right: true},
		{Title: "p50 ms", Right: true}, {Title: "p99 ms", Right: true}, {Title: "max ms", Right: true},
		{Title: "ingress p50 ms", Right: true}, {Title: "ingress p99 ms", Right: true}}
	cells := make([][]string, len(rows))
	for i, r := range rows {
		cells[i] = []string{r.Broker, fmtCount(float64(r.Commits)), fmtCount(r.Rate), fmtMs(r.P50), fmtMs(r.P99), fmtMs(r.Max),
			fmtMaybeMs(r.IngressP50), fmtMaybeMs(r.IngressP99)}
	}
	return formatTable(cols, cells)
}

// targetsTable checks the targets against the summaries.
func targetsTable(rows []summaryRow, lat []latencySummary, extra [][]string) string {
	cols := []column{{Title: "target"}, {Title: "measured"}, {Title: "met"}}
	var cells [][]string
	verdict := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	for _, r := range rows {
		if r.Broker == BrokerKafka {
			continue // issue 13's targets are the NATS brokers'; Kafka runs in-process here (see the note)
		}
		switch r.Workload {
		case "bulk":
			if r.Broker == BrokerStan {
				continue // the bulk target is JetStream's (NATS Streaming: no regression)
			}
			cells = append(cells, []string{
				fmt.Sprintf("bulk on %s: ≥ %.0f%% of the lower ceiling", r.Broker, targetBulkFraction*100),
				fmt.Sprintf("%s (%s of %s rows/s)", fmtPercent(r.Fraction()), fmtCount(r.E2E), fmtCount(r.LowerCeiling())),
				verdict(r.Fraction() >= targetBulkFraction)})
		case "tx":
			f := r.E2E / r.Source
			measured := fmt.Sprintf("%s (%s of %s rows/s)", fmtPercent(f), fmtCount(r.E2E), fmtCount(r.Source))
			if !math.IsNaN(r.Together) {
				measured += fmt.Sprintf("; source and sink together reach %s (%s rows/s)", fmtPercent(r.Together/r.Source), fmtCount(r.Together))
			}
			cells = append(cells, []string{
				fmt.Sprintf("single-row transactions on %s: ≥ %.0f%% of the source ceiling", r.Broker, targetTxFraction*100),
				measured, verdict(f >= targetTxFraction)})
		case "big":
			cells = append(cells, []string{
				fmt.Sprintf("one %s-row transaction on %s: peak RSS < %d MiB", fmtCount(float64(r.Rows)), r.Broker, targetBigRSS>>20),
				fmt.Sprintf("%s MiB", fmtFloat(r.PeakRSSMiB, 1)),
				verdict(r.PeakRSSMiB < targetBigRSS>>20)})
		}
	}
	for _, l := range lat {
		if l.Broker == BrokerKafka {
			continue
		}
		measured := fmt.Sprintf("p99 %s ms at %s commits/s", fmtMs(l.P99), fmtCount(l.Rate))
		ok := l.P99 < targetP99
		if l.Rate < targetLatencyRate*0.95 {
			measured += " (below the target rate: not comparable)"
			ok = false
		}
		cells = append(cells, []string{
			fmt.Sprintf("single-row commits at %s/s on %s: p99 < %d ms", fmtCount(targetLatencyRate), l.Broker, targetP99/time.Millisecond),
			measured, verdict(ok)})
	}
	return formatTable(cols, append(cells, extra...))
}

// fmtPercent formats a fraction as a whole percentage.
func fmtPercent(f float64) string {
	if math.IsNaN(f) {
		return notMeasured
	}
	return strconv.FormatFloat(f*100, 'f', 0, 64) + "%"
}

// rawTables renders every single measurement.
func rawTables(r *results) string {
	var b strings.Builder
	b.WriteString("Source ceiling (go-mysql alone):\n\n")
	var cells [][]string
	srcs := append([]sourceResult(nil), r.Source...)
	if r.BigSource != nil {
		srcs = append(srcs, *r.BigSource)
	}
	for _, s := range srcs {
		cells = append(cells, []string{runLabel(s.Run), s.Workload, fmtCount(float64(s.Rows)), fmtSeconds(s.Elapsed), fmtCount(s.RowsPerSec())})
	}
	b.WriteString(formatTable([]column{{Title: "run"}, {Title: "workload"}, {Title: "rows", Right: true},
		{Title: "seconds", Right: true}, {Title: "rows/s", Right: true}}, cells))

	b.WriteString("\nSink ceiling (pkg/mq publisher):\n\n")
	cells = nil
	for _, s := range r.Sink {
		cells = append(cells, []string{runLabel(s.Run), s.Workload, s.Broker, sinkMode(s.Streamed), fmtCount(float64(s.Msgs)),
			fmtFloat(float64(s.Bytes)/float64(max(s.Msgs, 1)), 0), fmtSeconds(s.Elapsed), fmtCount(s.MsgsPerSec())})
	}
	b.WriteString(formatTable([]column{{Title: "run"}, {Title: "workload"}, {Title: "broker"}, {Title: "publish"},
		{Title: "msgs", Right: true}, {Title: "bytes/msg", Right: true}, {Title: "seconds", Right: true}, {Title: "msgs/s", Right: true}}, cells))

	if len(r.Together) > 0 {
		b.WriteString("\nSource and sink ceilings together (both at the same time):\n\n")
		cells = nil
		for _, t := range r.Together {
			cells = append(cells, []string{runLabel(t.Run), t.Workload, t.Broker, fmtCount(float64(t.Rows)), fmtSeconds(t.Source),
				fmtSeconds(t.Sink), fmtSeconds(t.Elapsed), fmtCount(t.RowsPerSec())})
		}
		b.WriteString(formatTable([]column{{Title: "run"}, {Title: "workload"}, {Title: "broker"}, {Title: "rows", Right: true},
			{Title: "source done s", Right: true}, {Title: "sink done s", Right: true}, {Title: "seconds", Right: true},
			{Title: "rows/s", Right: true}}, cells))
	}

	b.WriteString("\nEnd to end (producer start until the broker holds every message):\n\n")
	cells = nil
	e2es := append([]e2eResult(nil), r.E2E...)
	if r.BigE2E != nil {
		e2es = append(e2es, *r.BigE2E)
	}
	for _, e := range e2es {
		cells = append(cells, []string{runLabel(e.Run), e.Workload, e.Broker, fmtCount(float64(e.Rows)), fmtSeconds(e.Elapsed),
			fmtMs(e.Startup), fmtCount(e.RowsPerSec()), fmtFloat(e.CPUPerRow, 2), fmtFloat(e.RowsPerBatch, 1), fmtFloat(mib(e.PeakRSS), 1)})
	}
	b.WriteString(formatTable([]column{{Title: "run"}, {Title: "workload"}, {Title: "broker"}, {Title: "rows", Right: true},
		{Title: "seconds", Right: true}, {Title: "startup ms", Right: true}, {Title: "rows/s", Right: true},
		{Title: "producer CPU µs/row", Right: true}, {Title: "rows/batch", Right: true},
		{Title: "peak RSS MiB", Right: true}}, cells))

	if len(r.Latency) > 0 {
		b.WriteString("\nLatency (COMMIT returned → delivered to a subscriber):\n\n")
		cells = nil
		for _, l := range r.Latency {
			cells = append(cells, []string{runLabel(l.Run), l.Broker, fmtCount(float64(l.Commits)), fmtCount(l.Rate),
				fmtMs(l.P50), fmtMs(l.P99), fmtMs(l.Max), fmtMaybeMs(l.IngressP50), fmtMaybeMs(l.IngressP99)})
		}
		b.WriteString(formatTable([]column{{Title: "run"}, {Title: "broker"}, {Title: "commits", Right: true},
			{Title: "commits/s", Right: true}, {Title: "p50 ms", Right: true}, {Title: "p99 ms", Right: true},
			{Title: "max ms", Right: true}, {Title: "ingress p50 ms", Right: true}, {Title: "ingress p99 ms", Right: true}}, cells))
	}
	return b.String()
}

// sinkMode names how the sink ceiling published.
func sinkMode(streamed bool) string {
	if streamed {
		return "one stream"
	}
	return "batches of 1,024"
}

// runLabel names a run; 0 is the one-off big-transaction measurement.
func runLabel(run int) string {
	if run == 0 {
		return "once"
	}
	return strconv.Itoa(run)
}

// fmtSeconds formats d in seconds with three decimals.
func fmtSeconds(d time.Duration) string { return fmtFloat(d.Seconds(), 3) }

// reportInput is everything the Markdown report shows.
type reportInput struct {
	Machine   machine
	Command   string
	Took      time.Duration
	Runs      int
	Workloads []*workload
	Results   *results
	Summary   []summaryRow
	Latency   []latencySummary
	Rate      float64
	Duration  time.Duration
}

// markdown renders docs/benchmarks.md.
func markdown(in reportInput) string {
	var b strings.Builder
	m := in.Machine
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `%s` on %s (it took %s). `make bench` runs the same command with the defaults; "+
		"run it again to refresh this file.\n\n", in.Command, m.Date.Format("2006-01-02 15:04 UTC"), in.Took.Round(time.Second))
	fmt.Fprintf(&b, "## Machine\n\n")
	fmt.Fprintf(&b, "- CPU: %d × %s\n- Memory: %s\n- OS: %s\n- Go: %s\n- MariaDB: %s (ROW format, binlog_row_metadata=FULL, sync_binlog=0, innodb_flush_log_at_trx_commit=2)\n",
		m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.GoVersion, m.MariaDB)
	fmt.Fprintf(&b, "- Other processes used %s of the CPUs during the measurements (%s): other work on the machine makes the numbers noisy.\n",
		fmtPercent(in.Results.OtherCPU), otherPerRun(in.Results.Runs))
	fmt.Fprintf(&b, "- Everything on this one machine: MariaDB, the broker, the producer and the subscriber. The brokers: **stan** is NATS Streaming "+
		"embedded in the benchmark process; **jetstream** is a NATS server with JetStream in a process of its own (as in production); "+
		"**jetstream-embedded** is the NATS server the producer embeds when JetStream.URL is empty (the example config's default), "+
		"its sink ceiling measured with the server in the publisher's process likewise; **kafka**: %s\n\n", kafkaNote)

	fmt.Fprintf(&b, "## Workloads\n\n")
	fmt.Fprintf(&b, "Written to the binlog once, before the runs, into tables `%s`:\n\n", tableColumns)
	for _, w := range in.Workloads {
		fmt.Fprintf(&b, "- **%s**: %s into `%s`; binlog %s .. %s", w.Name, w.Desc, w.fullTable(), w.Start, w.End)
		if n := len(w.Sample); n > 0 {
			total := 0
			for _, s := range w.Sample {
				total += len(s)
			}
			fmt.Fprintf(&b, "; envelopes average %d bytes", total/n)
		}
		b.WriteString(".\n")
	}
	fmt.Fprintf(&b, "\n## What each column measures\n\n")
	b.WriteString(`- **source ceiling**: go-mysql alone (replication.BinlogSyncer with the producer's options) reads the
  workload's stretch of the binlog and decodes every rows event; no encoding, no sink.
- **sink ceiling**: the project's publisher (pkg/mq, NewStan or NewJetStream with the producer's defaults)
  publishes as many messages as the workload has rows, cycling through real envelopes of that workload
  (a sample taken from a producer run), in batches of 1,024, one Publish after the other, to a fresh
  broker, until every message is acknowledged ("sink, batches").
- **sink, one stream**: the same, but all messages in one Publish call, so the publisher's window of 4,096
  unacknowledged messages never drains between batches: what the broker takes when publishing is pipelined.
  The sink ceiling is the higher of the two.
- **end to end**: the producer binary (built from the current source at the start of the command), default
  settings with checkpoints on, its checkpoint set to the workload's start and Tables.Include set to the
  workload's table, into a fresh broker: from the process start until the broker holds every message
  (polled every 10 ms). Peak RSS is the producer's VmHWM read then.
- **together**: the source ceiling and the sink ceiling (one stream, to a fresh broker) run at the same
  time, each as above, the clock running until both finished: the two stages sharing the machine's CPUs as
  in the producer's pipeline, with none of the producer's own work (encoding, batching, hand-offs,
  checkpoints). It is the most any producer could reach end to end on this machine; with 2 CPUs it sits
  well below the lower of the two ceilings measured alone.
- **e2e / min(ceilings)**: end to end divided by the lower of the source ceiling and the sink ceiling.
- **e2e / together**: end to end divided by together: the share of the machine's bound that dbsync reaches.
`)
	fmt.Fprintf(&b, "- **latency**: the producer running, a subscriber on the table's subject (NATS Streaming: a subscription; "+
		"JetStream: an ordered consumer), %s single-row commits per second for %s from one connection; latency is from "+
		"COMMIT returning in the writer to the message arriving at the subscriber (client clock). With JetStream, "+
		"**ingress** is the same up to the message reaching the NATS server, seen by a core NATS subscription on the subject "+
		"before the stream stored it: the producer's share of the latency.\n\n",
		fmtCount(in.Rate), in.Duration)

	fmt.Fprintf(&b, "## Throughput (median of %d runs)\n\n", in.Runs)
	b.WriteString(throughputTable(in.Summary))
	if len(in.Latency) > 0 {
		fmt.Fprintf(&b, "\n## Latency (median of %d runs)\n\n", in.Runs)
		b.WriteString(latencyTable(in.Latency))
	}
	var snapTargets [][]string
	if r := in.Results.Snapshot; r != nil {
		var measured string
		measured, snapTargets = snapshotTables(r)
		fmt.Fprintf(&b, "\n## Snapshot of a %s-row table (once)\n\n", fmtCount(float64(r.Rows)))
		b.WriteString("The table `bench.snap` (the shape above) is read by a producer on its first start with `Snapshot.Mode: \"initial\"` and " +
			"`Tables.Include` set to it: end to end runs from the process start until the broker holds every row. The **snapshot ceiling** is " +
			"pkg/binlog's snapshot reader alone, in the same chunks of 4,096 rows (each a SELECT in a consistent-snapshot transaction with its " +
			"watermarks, values decoded as the producer does), publishing nothing; the **sink ceiling** is the same broker's from the bulk " +
			"workload above (the same table shape; a snapshot envelope is some 50 bytes longer).\n\n")
		b.WriteString(measured)
	}
	if r := in.Results.Sync; r != nil {
		fmt.Fprintf(&b, "\n## Sync of a %s-row table (once)\n\n", fmtCount(float64(r.Rows)))
		b.WriteString(syncMarkdown(r))
	}
	if r := in.Results.Takeovers; r != nil {
		fmt.Fprintf(&b, "\n## Standby takeovers\n\n")
		fmt.Fprintf(&b, "Two producers for one source, the NATS key-value checkpoint store and `HA.Standby` with `HA.LeaseTTL: %s`, "+
			"against a NATS server of their own, under single-row commits at about 200/s: the active one is killed with SIGKILL %d times, "+
			"and each time the clock runs until the standby logged that its binlog stream started (it then publishes from the checkpoint). "+
			"Median **%s**, max **%s**; every one: %s.\n",
			r.LeaseTTL, len(r.Times), r.median().Round(time.Millisecond), r.max().Round(time.Millisecond), fmtDurations(r.Times))
	}
	fmt.Fprintf(&b, "\n## Targets\n\n")
	b.WriteString(targetsTable(in.Summary, in.Latency, snapTargets))
	fmt.Fprintf(&b, "\n## Every run\n\n")
	b.WriteString(rawTables(in.Results))
	return b.String()
}

// fmtDurations lists durations rounded to milliseconds.
func fmtDurations(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(out, ", ")
}
