package observability

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dashboardQueries returns every PromQL query of the dashboard (panel
// targets and the series selectors of label_values variables), ready for
// Prometheus's parser.
func dashboardQueries(t *testing.T, d *Dashboard) []string {
	t.Helper()
	var out []string
	for _, p := range d.AllPanels() {
		for _, tg := range p.Targets {
			out = append(out, PromQL(tg.Expr))
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		sel, _, ok := VariableSelector(v.Definition)
		if !ok {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		out = append(out, sel)
	}
	return out
}

// TestDashboard checks dashboard.json the way Grafana and Prometheus would
// use it: it imports into any Grafana (a data source variable, every
// panel and query on it), lets one pick the producers (job and instance
// variables, every selector filtered by both), every query parses with
// Prometheus's parser and names its metrics literally, and the panels cover
// what an operator watches: throughput per table and type, lag in seconds
// and bytes, checkpoint age, binlog retention, publish latency
// percentiles, batch sizes, errors, connection and stall states, snapshot
// progress and the active/standby role.
func TestDashboard(t *testing.T) {
	t.Parallel()
	d, err := LoadDashboard(filepath.Join(ObservabilityDir(repoRoot), "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q: want both", d.Title, d.UID)
	}
	vars := map[string]Variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds := vars["datasource"]; ds.Type != "datasource" || string(ds.Query) != `"prometheus"` {
		t.Errorf("variable datasource: type %q, query %s; want a Prometheus data source variable", ds.Type, ds.Query)
	}
	for _, name := range []string{"job", "instance"} {
		v := vars[name]
		_, label, ok := VariableSelector(v.Definition)
		if v.Type != "query" || !ok || label != name || !v.Multi || !v.IncludeAll {
			t.Errorf("variable %s: %+v; want a multi-value query variable label_values(..., %s) with All", name, v, name)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s does not query the data source variable: %+v", name, v.Datasource)
		}
	}

	onDatasource := func(ds *Datasource) bool { return ds != nil && ds.Type == "prometheus" && ds.UID == "${datasource}" }
	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.AllPanels() {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if !onDatasource(p.Datasource) || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %+v, %d queries; want queries on ${datasource}", p.Title, p.Datasource, len(p.Targets))
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if !onDatasource(tg.Datasource) || tg.RefID == "" || refs[tg.RefID] || tg.Expr == "" {
				t.Errorf("panel %q: query %+v: want an expression on ${datasource} with a refId of its own", p.Title, tg)
			}
			refs[tg.RefID] = true
			exprs = append(exprs, tg.Expr)
		}
	}

	queries := dashboardQueries(t, d)
	parsed, err := MetricNames(promtoolsBin, queries)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, r := range parsed {
		if r.Error != "" {
			t.Errorf("query %q: %s", r.Expr, r.Error)
		}
		for _, n := range r.Names {
			used[n] = true
		}
	}
	for i, r := range parsed[:len(exprs)] {
		for _, n := range r.Names {
			if bad := unfilteredSelectors(exprs[i], n); len(bad) > 0 {
				t.Errorf("query %q: %s selected as %q, want {job=~\"$job\", instance=~\"$instance\"}", exprs[i], n, bad)
			}
		}
	}
	for _, m := range []string{
		"dbsync_rows_published_total", "dbsync_transactions_published_total",
		"dbsync_replication_lag_seconds", "dbsync_replication_lag_bytes", "dbsync_checkpoint_age_seconds",
		"dbsync_checkpoint_binlog_file_age_seconds", "dbsync_binlog_retention_seconds",
		"dbsync_publish_duration_seconds_bucket", "dbsync_batch_rows_bucket",
		"dbsync_publish_errors_total", "dbsync_unpublishable_total",
		"dbsync_source_connected", "dbsync_broker_connected", "dbsync_stalled",
		"dbsync_snapshot_rows_total", "dbsync_snapshot_remaining_rows", "dbsync_snapshot_running",
		"dbsync_ha_active", "dbsync_ha_takeovers_total", "dbsync_memory_budget_used_bytes",
	} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, q := range []string{"0.5", "0.9", "0.99"} {
		if !strings.Contains(all, "histogram_quantile("+q+", sum by (instance, le) (rate(dbsync_publish_duration_seconds_bucket{") {
			t.Errorf("no panel shows the %s quantile of the publish latency", q)
		}
	}
	if !strings.Contains(all, "sum by (db, table, type) (rate(dbsync_rows_published_total{") {
		t.Error("no panel shows throughput per table and type")
	}
	var titles []string
	for _, p := range d.AllPanels() {
		titles = append(titles, p.Title)
	}
	for _, want := range MainPanels() {
		if !slices.Contains(titles, want) {
			t.Errorf("the picture's panel %q is not on the dashboard", want)
		}
	}
}

// unfilteredSelectors returns the selectors of metric name in expr that
// are not filtered by the dashboard's job and instance variables.
func unfilteredSelectors(expr, name string) []string {
	const want = `{job=~"$job", instance=~"$instance"}`
	var bad []string
	isNameChar := func(c byte) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; ; {
		j := strings.Index(expr[i:], name)
		if j < 0 {
			return bad
		}
		start, end := i+j, i+j+len(name)
		i = end
		if start > 0 && isNameChar(expr[start-1]) || end < len(expr) && isNameChar(expr[end]) {
			continue // part of a longer name
		}
		if !strings.HasPrefix(expr[end:], want) {
			sel := expr[start:end]
			if k := strings.IndexByte(expr[end:], '}'); strings.HasPrefix(expr[end:], "{") && k >= 0 {
				sel = expr[start : end+k+1]
			}
			bad = append(bad, sel)
		}
	}
}

// TestDashboardImportsAsJSON: the file is one JSON object Grafana's import
// takes (no id, which would tie it to one Grafana's database).
func TestDashboardImportsAsJSON(t *testing.T) {
	t.Parallel()
	var raw map[string]json.RawMessage
	readJSONFile(t, filepath.Join(ObservabilityDir(repoRoot), "dashboard.json"), &raw)
	if _, ok := raw["id"]; ok {
		t.Error("dashboard.json has an id: Grafana would try to overwrite that dashboard")
	}
	for _, k := range []string{"panels", "templating", "schemaVersion", "uid", "title"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("dashboard.json has no %s", k)
		}
	}
}
