package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, nan, 2, 6}, 6},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, in := range [][]float64{nil, {nan, nan}} {
		if got := median(in); !math.IsNaN(got) {
			t.Errorf("median(%v) = %v, want NaN", in, got)
		}
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("median reordered its input: %v", in)
	}
}

func TestPercentile(t *testing.T) {
	// 1ms .. 100ms: the nearest-rank p-th percentile is p ms.
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond,
		100: 100 * time.Millisecond, 0.1: time.Millisecond, 99.5: 100 * time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("percentile(1..100 ms, %v) = %v, want %v", p, got, want)
		}
	}
	// With 10 values, p99 is the maximum and p50 the 5th value.
	ten := d[:10]
	if got := percentile(ten, 99); got != 10*time.Millisecond {
		t.Errorf("percentile(1..10 ms, 99) = %v, want 10ms", got)
	}
	if got := percentile(ten, 50); got != 5*time.Millisecond {
		t.Errorf("percentile(1..10 ms, 50) = %v, want 5ms", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil, 50) = %v, want 0", got)
	}
}

func TestFormatTable(t *testing.T) {
	got := formatTable([]column{{Title: "name"}, {Title: "rows/s", Right: true}},
		[][]string{{"bulk", "1,234"}, {"tx"}, {"big—x", "5", "dropped"}})
	want := strings.Join([]string{
		"| name  | rows/s |",
		"| ----- | -----: |",
		"| bulk  |  1,234 |",
		"| tx    |        |",
		"| big—x |      5 |",
		"",
	}, "\n")
	if got != want {
		t.Errorf("formatTable =\n%s\nwant\n%s", got, want)
	}
}

func TestFmtCount(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 123456.6: "123,457",
		1234567: "1,234,567", -1234: "-1,234", math.NaN(): notMeasured} {
		if got := fmtCount(in); got != want {
			t.Errorf("fmtCount(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestSummaryFractionAndMedians(t *testing.T) {
	r := &results{
		Source: []sourceResult{{Run: 1, Workload: "bulk", Rows: 1000, Elapsed: time.Second},
			{Run: 2, Workload: "bulk", Rows: 1000, Elapsed: 500 * time.Millisecond},
			{Run: 3, Workload: "bulk", Rows: 1000, Elapsed: 250 * time.Millisecond}},
		Sink: []sinkResult{{Run: 1, Workload: "bulk", Broker: "stan", Msgs: 800, Elapsed: time.Second},
			{Run: 1, Workload: "bulk", Broker: "stan", Streamed: true, Msgs: 3000, Elapsed: time.Second}},
		E2E: []e2eResult{{Run: 1, Workload: "bulk", Broker: "stan", Rows: 400, Elapsed: time.Second, PeakRSS: 10 << 20},
			{Run: 2, Workload: "bulk", Broker: "stan", Rows: 600, Elapsed: time.Second, PeakRSS: 30 << 20}},
	}
	rows := r.summarize([]string{"bulk"}, []string{"stan", "jetstream"})
	if len(rows) != 2 {
		t.Fatalf("summarize returned %d rows, want 2", len(rows))
	}
	s := rows[0]
	if s.Source != 2000 || s.Sink != 800 || s.SinkStreamed != 3000 || s.E2E != 500 || s.PeakRSSMiB != 20 {
		t.Errorf("stan row = %+v, want source 2000, sink 800 (streamed 3000), e2e 500, RSS 20 MiB", s)
	}
	// The sink ceiling is the better sink measurement (3000), so the
	// source (2000) is the lower ceiling.
	if got := s.Fraction(); got != 0.25 {
		t.Errorf("Fraction = %v, want 0.25 (e2e over min(source, best sink))", got)
	}
	s.SinkStreamed = math.NaN()
	if got := s.Fraction(); got != 500.0/800 {
		t.Errorf("Fraction without the streamed sink = %v, want %v", got, 500.0/800)
	}
	if js := rows[1]; !math.IsNaN(js.Sink) || !math.IsNaN(js.E2E) || !math.IsNaN(js.Fraction()) {
		t.Errorf("jetstream row without measurements = %+v, want NaN sink, e2e and fraction", js)
	}
	table := throughputTable(rows)
	if !strings.Contains(table, "| bulk     | stan      |                 2,000 |") || !strings.Contains(table, "|                0.25 |") {
		t.Errorf("throughputTable =\n%s\nwant the stan row with 2,000 and 0.25", table)
	}
}

func TestTargetsTable(t *testing.T) {
	rows := []summaryRow{
		{Workload: "bulk", Broker: "stan", Source: 800_000, Sink: 240_000, SinkStreamed: 300_000, E2E: 230_000},
		{Workload: "bulk", Broker: "jetstream", Source: 800_000, Sink: 100_000, SinkStreamed: 130_000, E2E: 120_000},
		{Workload: "tx", Broker: "stan", Source: 90_000, Sink: 200_000, SinkStreamed: 200_000, Together: 85_500, E2E: 75_000},
		{Workload: "tx", Broker: "jetstream", Source: 90_000, Sink: 80_000, SinkStreamed: 100_000, Together: math.NaN(), E2E: 50_000},
		{Workload: "big", Broker: "stan", Rows: 1_000_000, Source: 800_000, Sink: math.NaN(), SinkStreamed: math.NaN(),
			Together: math.NaN(), E2E: 200_000, PeakRSSMiB: 160},
	}
	lat := []latencySummary{
		{Broker: "stan", Rate: 1000, P99: 2 * time.Millisecond},
		{Broker: "jetstream", Rate: 500, P99: 2 * time.Millisecond}, // below the target rate
	}
	got := targetsTable(rows, lat, nil)
	if strings.Contains(got, "bulk on stan") {
		t.Errorf("targetsTable has a bulk target for NATS Streaming:\n%s", got)
	}
	for target, want := range map[string]struct{ measured, met string }{
		"bulk on jetstream:":                    {"92% (120,000 of 130,000 rows/s)", "yes"},
		"single-row transactions on stan:":      {"83% (75,000 of 90,000 rows/s); source and sink together reach 95% (85,500 rows/s)", "yes"},
		"single-row transactions on jetstream:": {"56% (50,000 of 90,000 rows/s) ", "NO"},
		"one 1,000,000-row":                     {"160.0 MiB", "NO"},
		"1,000/s on stan: p99 < 5":              {"p99 2.00 ms at 1,000 commits/s", "yes"},
		"1,000/s on jetstream: p99 ":            {"(below the target rate: not comparable)", "NO"},
	} {
		line := ""
		for _, l := range strings.Split(got, "\n") {
			if strings.Contains(l, target) {
				line = l
			}
		}
		if !strings.Contains(line, want.measured) || !strings.HasSuffix(line, "| "+want.met+strings.Repeat(" ", 4-len(want.met))+"|") {
			t.Errorf("targetsTable row %q = %q, want %q and met %q; table:\n%s", target, line, want.measured, want.met, got)
		}
	}
}
