package observability

import (
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dbsync/dbsync/test/e2e"
)

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// prometheusOwn are the series Prometheus itself writes for every target;
// no exporter exposes them.
var prometheusOwn = []string{"up"}

// exposes reports whether the families hold the series name: a family of
// that name, or the _bucket, _sum or _count series of a histogram family
// (_sum and _count of a summary).
func exposes(families map[string]*dto.MetricFamily, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f, ok := families[base]; ok {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				return true
			case dto.MetricType_SUMMARY:
				return suffix != "_bucket"
			}
		}
	}
	return false
}

// usedMetricNames returns every metric name the dashboard's queries and
// the alert rules' expressions read, with the queries reading each.
func usedMetricNames(t *testing.T) map[string][]string {
	t.Helper()
	d, err := LoadDashboard(filepath.Join(ObservabilityDir(repoRoot), "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	queries := dashboardQueries(t, d)
	for _, a := range loadRulesFile(t).alerts() {
		queries = append(queries, a.Expr)
	}
	parsed, err := MetricNames(promtoolsBin, queries)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string][]string{}
	for _, r := range parsed {
		if r.Error != "" {
			t.Fatalf("query %q: %s", r.Expr, r.Error)
		}
		for _, n := range r.Names {
			used[n] = append(used[n], r.Expr)
		}
	}
	return used
}

// TestMetricsExistInARealRun runs the producer binary against MariaDB and
// NATS with JetStream through what the dashboard shows (an initial
// snapshot, inserts, updates and deletes, a change dead-lettered because
// its table's name cannot be a subject), scrapes its /metrics, and checks
// that every metric name the dashboard and the alert rules read is among
// what it exposes (histogram series by their family). It also renders the
// picture's panels over the scrapes, as dashshot does.
func TestMetricsExistInARealRun(t *testing.T) {
	t.Parallel()
	used := usedMetricNames(t)

	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	e.DB.Exec(t, "CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, qty INT)",
		"INSERT INTO shop.orders SELECT seq, 1 FROM shop.seq_1_to_300")
	e.Set("Snapshot.Mode", "initial")
	e.Set("Tables.OnUnpublishable", "skip")
	p := e.Start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("producer's log:\n%s", p.Output())
		}
	})
	e.WaitFor("shop.orders", 300, time.Minute) // the snapshot
	rec := Record(e.HTTPAddr, "dbsync producer: metrics test", 250*time.Millisecond)
	for i := 301; i <= 340; i++ {
		id := strconv.Itoa(i)
		e.DB.Exec(t, "INSERT INTO shop.orders VALUES ("+id+", 1)", "UPDATE shop.orders SET qty = 2 WHERE id = "+id)
		time.Sleep(50 * time.Millisecond) // a couple of seconds of traffic for the picture
	}
	// A table a snapshot would refuse, created after it.
	e.DB.Exec(t, "DELETE FROM shop.orders WHERE id <= 10",
		"CREATE TABLE shop.`orders.2024` (id INT PRIMARY KEY)", "INSERT INTO shop.`orders.2024` VALUES (1)")
	e.WaitFor("shop.orders", 300+40*2+10, 30*time.Second)

	// Everything a run like this produces shows up within a few monitor
	// polls (the binlog ages once the monitor has seen the source).
	var families map[string]*dto.MetricFamily
	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		text, err := ScrapeMetrics(context.Background(), e.HTTPAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if families, err = MetricFamilies(text); err != nil {
			t.Fatalf("/metrics does not parse: %v\n%s", err, text)
		}
		missing = missing[:0]
		for n := range used {
			if !exposes(families, n) && !slices.Contains(prometheusOwn, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	slices.Sort(missing)
	for _, n := range missing {
		t.Errorf("%s is read by %q but the producer does not expose it", n, used[n])
	}
	// The binlog retention figures of this run: the server's setting, and
	// a checkpoint in the file being written (polled every 2 s).
	var expire float64
	if err := e.DB.DB(t).QueryRow("SELECT @@binlog_expire_logs_seconds").Scan(&expire); err != nil {
		t.Fatal(err)
	}
	if got := gaugeValue(families, "dbsync_binlog_retention_seconds"); got != expire {
		t.Errorf("dbsync_binlog_retention_seconds = %v, the server's binlog_expire_logs_seconds is %v", got, expire)
	}
	if got := gaugeValue(families, "dbsync_checkpoint_binlog_file_age_seconds"); got < 0 || got > 10 {
		t.Errorf("dbsync_checkpoint_binlog_file_age_seconds = %v with the checkpoint in the file being written", got)
	}
	if len(used) < 20 {
		t.Errorf("only %d metric names used by the dashboard and the rules: %v", len(used), used)
	}

	for taken, _ := rec.Scrapes(); taken < 12; taken, _ = rec.Scrapes() {
		time.Sleep(100 * time.Millisecond)
	}
	run := rec.Stop()
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if taken, answered := len(run.Scrapes), countAnswered(run); answered != taken {
		t.Fatalf("recorded %d scrapes, %d answered: want all answered", taken, answered)
	}
	runFile := filepath.Join(t.TempDir(), "run.json")
	if err := WriteRun(run, runFile); err != nil {
		t.Fatal(err)
	}
	picture := filepath.Join(t.TempDir(), "panels.png")
	if _, err := Promtools(promtoolsBin, nil, "render", "-dashboard", filepath.Join(ObservabilityDir(repoRoot), "dashboard.json"),
		"-run", runFile, "-panels", strings.Join(MainPanels(), ";"), "-width", "1200", "-out", picture); err != nil {
		t.Fatal(err)
	}
	checkPicture(t, picture, 1200)
}

// gaugeValue is the value of an unlabelled gauge, -1 when absent.
func gaugeValue(families map[string]*dto.MetricFamily, name string) float64 {
	f, ok := families[name]
	if !ok || len(f.GetMetric()) != 1 {
		return -1
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

func countAnswered(run Run) int {
	n := 0
	for _, s := range run.Scrapes {
		if s.OK {
			n++
		}
	}
	return n
}

// checkPicture decodes a rendered PNG: width pixels wide, taller than a
// row of panels, and more than a blank page (plots draw in many colours).
func checkPicture(t *testing.T, path string, width int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if b.Dx() != width || b.Dy() < width/2 {
		t.Errorf("%s is %dx%d, want %d wide and taller than %d", path, b.Dx(), b.Dy(), width, width/2)
	}
	colors := map[[3]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	if len(colors) < 20 {
		t.Errorf("%s has %d colours: nothing was plotted", path, len(colors))
	}
}
