package observability

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// runbookBase is where every alert's runbook_url points, followed by the
// alert's section anchor in docs/operations.md.
const runbookBase = "https://github.com/dbsync/dbsync/blob/main/docs/operations.md#"

// The rules file as Prometheus reads it (the fields dbsync's rules use;
// decoding is strict, so anything else is reported).
type rulesFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// The rule-test file, as far as the coverage check reads it.
type ruleTests struct {
	Tests []struct {
		Name           string `json:"name"`
		AlertRuleTests []struct {
			EvalTime  string           `json:"eval_time"`
			Alertname string           `json:"alertname"`
			ExpAlerts []map[string]any `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

func readYAML(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(b []byte, v any) error { return yaml.Unmarshal(b, v) }
	if strict {
		decode = func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) }
	}
	if err := decode(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadRulesFile(t *testing.T) rulesFile {
	t.Helper()
	var rf rulesFile
	readYAML(t, filepath.Join(ObservabilityDir(repoRoot), "alerts.yml"), &rf, true)
	if len(rf.Groups) == 0 {
		t.Fatal("alerts.yml has no rule group")
	}
	return rf
}

func (rf rulesFile) alerts() []rule {
	var out []rule
	for _, g := range rf.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestAlertRulesLoad: alerts.yml loads as Prometheus loads a rules file
// (Prometheus's rulefmt: every expression parsed, every template checked,
// unknown fields refused, no duplicate rule), and each alert has what an
// operator needs: a severity, a summary, a description and a runbook link
// to its own section of docs/operations.md, which the docs' alert table
// lists.
func TestAlertRulesLoad(t *testing.T) {
	t.Parallel()
	dir := ObservabilityDir(repoRoot)
	out, err := Promtools(promtoolsBin, nil, "check-rules", filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := loadRulesFile(t).alerts()
	if want := "SUCCESS: " + strconv.Itoa(len(alerts)) + " rules found"; !strings.Contains(out, want) {
		t.Errorf("promtools check-rules: %q, want %q", out, want)
	}
	docs, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(docs))
	for _, a := range alerts {
		if a.Alert == "" {
			t.Errorf("a rule without alert name (recording rules do not belong here): %+v", a)
			continue
		}
		if s := a.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", a.Alert, s)
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if a.Annotations[k] == "" {
				t.Errorf("%s: no %s annotation", a.Alert, k)
			}
		}
		anchor := strings.ToLower(a.Alert)
		if got, want := a.Annotations["runbook_url"], runbookBase+anchor; got != want {
			t.Errorf("%s: runbook_url %q, want %q", a.Alert, got, want)
		}
		if !anchors[anchor] {
			t.Errorf("%s: docs/operations.md has no section %q (a heading \"### %s\")", a.Alert, anchor, a.Alert)
		}
		if !strings.Contains(string(docs), "["+a.Alert+"](#"+anchor+")") {
			t.Errorf("%s: the alert table of docs/operations.md does not list it", a.Alert)
		}
	}
}

// markdownAnchors returns the anchors GitHub gives a document's headings.
func markdownAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		anchors[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return anchors
}

// TestAlertRulesUnitTests runs alerts_test.yml (promtool's rule-test
// format: synthetic series, alerts expected at given times) with
// Prometheus's rule-file parser, template expander and query engine, checks
// that every alert is tested both firing and quiet, and that the runner
// catches a wrong rule: with every `for` removed, the pending-time checks
// of every alert fail.
func TestAlertRulesUnitTests(t *testing.T) {
	t.Parallel()
	dir := ObservabilityDir(repoRoot)
	testFile := filepath.Join(dir, "alerts_test.yml")
	if _, err := Promtools(promtoolsBin, nil, "test-rules", testFile); err != nil {
		t.Fatal(err)
	}

	var tests ruleTests
	readYAML(t, testFile, &tests, false)
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tg := range tests.Tests {
		for _, at := range tg.AlertRuleTests {
			if len(at.ExpAlerts) > 0 {
				firing[at.Alertname] = true
			} else {
				quiet[at.Alertname] = true
			}
		}
	}
	alerts := loadRulesFile(t).alerts()
	for _, a := range alerts {
		if !firing[a.Alert] || !quiet[a.Alert] {
			t.Errorf("alerts_test.yml does not test %s both firing (%v) and quiet (%v)", a.Alert, firing[a.Alert], quiet[a.Alert])
		}
	}

	// The same tests on the rules with no `for`: each alert fires early.
	broken := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	noFor := regexp.MustCompile(`(?m)^\s+for: .*\n`).ReplaceAll(rules, nil)
	if bytes.Equal(noFor, rules) {
		t.Fatal("alerts.yml has no `for:` to remove")
	}
	writeFile(t, filepath.Join(broken, "alerts.yml"), noFor)
	copyFile(t, testFile, filepath.Join(broken, "alerts_test.yml"))
	out, err := Promtools(promtoolsBin, nil, "test-rules", filepath.Join(broken, "alerts_test.yml"))
	if err == nil {
		t.Fatalf("the rule tests pass on rules without `for`:\n%s", out)
	}
	for _, a := range alerts {
		if !strings.Contains(err.Error(), "alertname: "+a.Alert+",") {
			t.Errorf("with no `for`, the tests of %s still pass:\n%v", a.Alert, err)
		}
	}
}

// TestPrometheusRuleMatchesRulesFile: prometheusrule.yaml is a
// PrometheusRule holding exactly alerts.yml's groups, and the
// kustomization builds it and the dashboard's ConfigMap for Grafana's
// sidecar, holding dashboard.json unchanged.
func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	t.Parallel()
	dir := ObservabilityDir(repoRoot)
	type prometheusRule struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec rulesFile `json:"spec"`
	}
	var pr prometheusRule
	readYAML(t, filepath.Join(dir, "prometheusrule.yaml"), &pr, true)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		t.Errorf("prometheusrule.yaml: %s %s %q, want a named monitoring.coreos.com/v1 PrometheusRule", pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	if rf := loadRulesFile(t); !reflect.DeepEqual(pr.Spec, rf) {
		t.Errorf("prometheusrule.yaml's groups differ from alerts.yml's:\n%+v\n%+v", pr.Spec, rf)
	}

	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var kinds []string
	for _, r := range res.Resources() {
		kinds = append(kinds, r.GetKind()+"/"+r.GetName())
		switch r.GetKind() {
		case "PrometheusRule":
			data, err := r.AsYAML()
			if err != nil {
				t.Fatal(err)
			}
			var built prometheusRule
			if err := yaml.UnmarshalStrict(data, &built); err != nil {
				t.Fatalf("built PrometheusRule: %v", err)
			}
			if !reflect.DeepEqual(built, pr) {
				t.Errorf("kustomize changed the PrometheusRule:\n%+v\n%+v", built, pr)
			}
		case "ConfigMap":
			data := r.GetDataMap()
			want, err := os.ReadFile(filepath.Join(dir, "dashboard.json"))
			if err != nil {
				t.Fatal(err)
			}
			if data["dashboard.json"] != string(want) {
				t.Error("the dashboard ConfigMap does not hold dashboard.json as it is")
			}
			if r.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("the dashboard ConfigMap's labels %v lack grafana_dashboard: \"1\"", r.GetLabels())
			}
		}
	}
	slices.Sort(kinds)
	if want := []string{"ConfigMap/dbsync-dashboard", "PrometheusRule/dbsync"}; !slices.Equal(kinds, want) {
		t.Errorf("kustomize build %s: %v, want %v", dir, kinds, want)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}
