// Package observability checks what deploy/observability ships — the
// Grafana dashboard and the Prometheus alert rules — with Prometheus's own
// packages and against a real producer's /metrics, and records producer
// runs for the dashboard's picture (dashshot).
//
// Prometheus's rule and query packages live in the promtools module beside
// this package (a go.mod of its own, so their dependencies stay out of
// dbsync's); BuildPromtools builds it with the versions pinned there.
package observability

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// RepoRoot returns the repository's root directory (found from this
// source file's place in it).
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot tell where the observability package's source is")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("repository root %s: %w", root, err)
	}
	return root, nil
}

// ObservabilityDir is deploy/observability under root.
func ObservabilityDir(root string) string { return filepath.Join(root, "deploy", "observability") }

// BuildPromtools builds the promtools command (test/observability/promtools,
// its own module) into dir and returns the binary's path. It needs only Go
// and the module proxy; the module's go.sum pins every dependency.
func BuildPromtools(root, dir string) (string, error) {
	bin := filepath.Join(dir, "promtools")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(root, "test", "observability", "promtools")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build promtools in %s: %w\n%s", cmd.Dir, err, out)
	}
	return bin, nil
}

// Promtools runs the promtools binary with args and stdin, returning its
// standard output, and an error holding its standard error when it fails.
func Promtools(bin string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("promtools %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// ExprNames is what `promtools names` says about one expression: the
// metric names its selectors read, or why it does not parse.
type ExprNames struct {
	Expr  string   `json:"expr"`
	Names []string `json:"names"`
	Error string   `json:"error"`
}

// MetricNames parses each PromQL expression with Prometheus's parser (via
// promtools) and returns what each reads.
func MetricNames(bin string, exprs []string) ([]ExprNames, error) {
	in, err := json.Marshal(exprs)
	if err != nil {
		return nil, err
	}
	out, err := Promtools(bin, in, "names")
	if err != nil {
		return nil, err
	}
	var res []ExprNames
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return nil, fmt.Errorf("promtools names: %w\n%s", err, out)
	}
	if len(res) != len(exprs) {
		return nil, fmt.Errorf("promtools names answered %d expressions of %d", len(res), len(exprs))
	}
	return res, nil
}

// Dashboard is the part of a Grafana dashboard the checks read.
type Dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a dashboard panel (a row holds its panels when collapsed).
type Panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Datasource  *Datasource              `json:"datasource"`
	Panels      []Panel                  `json:"panels"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []Target `json:"targets"`
}

// Target is one query of a panel.
type Target struct {
	Datasource   *Datasource `json:"datasource"`
	Expr         string      `json:"expr"`
	LegendFormat string      `json:"legendFormat"`
	RefID        string      `json:"refId"`
}

// Datasource names a panel's or a variable's data source.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a template variable.
type Variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Datasource *Datasource `json:"datasource"`
	// Query is the data source type for a datasource variable, and an
	// object holding the query for a Prometheus query variable.
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	IncludeAll bool            `json:"includeAll"`
	Multi      bool            `json:"multi"`
}

// LoadDashboard reads a dashboard JSON file, refusing unknown structure
// only where the checks need it (Grafana keeps many more fields).
func LoadDashboard(path string) (*Dashboard, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// AllPanels returns every panel, those inside rows included, rows left out.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaIntervals are Grafana's interval variables, which PromQL cannot
// parse as they stand.
var grafanaIntervals = strings.NewReplacer("$__rate_interval", "1m", "${__rate_interval}", "1m", "$__interval", "1m", "${__interval}", "1m", "$__range", "1h", "${__range}", "1h")

// PromQL returns expr with Grafana's interval variables replaced by
// durations, so that Prometheus's parser reads it; $job-style variables
// stand inside label matchers' strings and are left as they are.
func PromQL(expr string) string { return grafanaIntervals.Replace(expr) }

// labelValuesQuery matches a variable's label_values(metric{...}, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// VariableSelector returns the series selector of a label_values(...)
// variable query, and the label it lists.
func VariableSelector(query string) (selector, label string, ok bool) {
	m := labelValuesQuery.FindStringSubmatch(strings.TrimSpace(query))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// MainPanels are the titles of the dashboard panels the picture shows, in
// order (two to a row).
func MainPanels() []string {
	return []string{
		"Rows published by table and type", "Connections and stall",
		"Replication lag (seconds)", "Replication lag (bytes)",
		"Checkpoint age", "Errors",
		"Publish latency", "Batch size",
	}
}
