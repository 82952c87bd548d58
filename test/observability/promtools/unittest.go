package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/template"
	"go.yaml.in/yaml/v3"
)

// The rule-test file, in promtool's format (`promtool test rules`). This
// runner supports the part of the format dbsync's tests use; any other
// field is an error, never ignored. It evaluates as promtool v0.316.0 does
// (same parser, engine options, template expander and alert states): on
// deploy/observability/alerts_test.yml and 166 variants of it with shifted
// eval times, thresholds and `for` durations, the two pass and fail alike.
type unitTestFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	Tests              []testGroup    `yaml:"tests"`
}

type testGroup struct {
	Name           string          `yaml:"name"`
	Interval       model.Duration  `yaml:"interval"`
	InputSeries    []inputSeries   `yaml:"input_series"`
	AlertRuleTests []alertTestCase `yaml:"alert_rule_test"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []expAlert     `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

// testRulesFiles runs every test file and reports each one's outcome.
func testRulesFiles(files []string, out io.Writer) error {
	if len(files) == 0 {
		return errors.New("no test file given")
	}
	var failed []error
	for _, f := range files {
		if err := runTestFile(f); err != nil {
			failed = append(failed, fmt.Errorf("%s: FAILED:\n%w", f, err))
			continue
		}
		fmt.Fprintf(out, "%s: SUCCESS\n", f)
	}
	return errors.Join(failed...)
}

func runTestFile(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var tf unitTestFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return fmt.Errorf("%w (this runner reads rule_files, evaluation_interval and tests with name, interval, input_series and alert_rule_test)", err)
	}
	if tf.EvaluationInterval == 0 {
		tf.EvaluationInterval = model.Duration(time.Minute)
	}
	var ruleFiles []string
	for _, rf := range tf.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(filepath.Dir(file), rf)
		}
		matches, err := filepath.Glob(rf)
		if err != nil {
			return err
		}
		if len(matches) == 0 {
			return fmt.Errorf("rule_files: no file matches %s", rf)
		}
		ruleFiles = append(ruleFiles, matches...)
	}
	var rules []alertingRule
	for _, rf := range ruleFiles {
		groups, err := loadRules(rf)
		if err != nil {
			return err
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				ar, err := newAlertingRule(rf, g, r)
				if err != nil {
					return err
				}
				rules = append(rules, ar)
			}
		}
	}
	var errs []error
	for i, tg := range tf.Tests {
		name := tg.Name
		if name == "" {
			name = fmt.Sprintf("unnamed#%d", i)
		}
		if tg.Interval == 0 {
			tg.Interval = tf.EvaluationInterval
		}
		if err := tg.run(rules, time.Duration(tf.EvaluationInterval)); err != nil {
			errs = append(errs, fmt.Errorf("  test %q:\n%w", name, err))
		}
	}
	return errors.Join(errs...)
}

// alertingRule is one alerting rule of a rules file.
type alertingRule struct {
	name        string
	expr        string
	hold        time.Duration
	labels      map[string]string
	annotations map[string]string
}

// newAlertingRule takes r, refusing what this runner does not evaluate as
// Prometheus would (recording rules, keep_firing_for, limits, offsets and
// expressions reading the ALERTS series other rules write).
func newAlertingRule(file string, g rulefmt.RuleGroup, r rulefmt.Rule) (alertingRule, error) {
	where := fmt.Sprintf("%s: group %q: rule %q", file, g.Name, r.Alert+r.Record)
	switch {
	case r.Record != "":
		return alertingRule{}, fmt.Errorf("%s: recording rules are not supported by this runner", where)
	case r.KeepFiringFor != 0:
		return alertingRule{}, fmt.Errorf("%s: keep_firing_for is not supported by this runner", where)
	case g.Limit != 0 || g.QueryOffset != nil:
		return alertingRule{}, fmt.Errorf("%s: group limit and query_offset are not supported by this runner", where)
	}
	names, err := selectedNames(r.Expr)
	if err != nil {
		return alertingRule{}, fmt.Errorf("%s: %w", where, err)
	}
	if slices.Contains(names, "ALERTS") || slices.Contains(names, "ALERTS_FOR_STATE") {
		return alertingRule{}, fmt.Errorf("%s: expressions over ALERTS are not supported by this runner", where)
	}
	return alertingRule{name: r.Alert, expr: r.Expr, hold: time.Duration(r.For), labels: r.Labels, annotations: r.Annotations}, nil
}

// alertState is an alert of a rule, as Prometheus's rules package keeps it.
type alertState struct {
	labels      labels.Labels
	annotations labels.Labels
	activeAt    time.Time
	firing      bool
}

// run loads the group's series and evaluates every rule at every
// evaluation interval from 0 to the last eval_time, comparing the firing
// alerts with the expected ones at each eval_time, the way promtool does.
func (tg testGroup) run(rules []alertingRule, evalInterval time.Duration) error {
	store := newMemStorage()
	p := promqlParser()
	for _, s := range tg.InputSeries {
		lset, values, err := p.ParseSeriesDesc(s.Series + " " + s.Values)
		if err != nil {
			return fmt.Errorf("    input series %s %q: %w", s.Series, s.Values, err)
		}
		for i, v := range values {
			if v.Omitted {
				continue
			}
			if v.Histogram != nil {
				return fmt.Errorf("    input series %s: histogram samples are not supported by this runner", s.Series)
			}
			store.add(lset, (time.Duration(i) * time.Duration(tg.Interval)).Milliseconds(), v.Value)
		}
	}
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:               10000,
		Timeout:                  100 * time.Second,
		NoStepSubqueryIntervalFn: func(int64) int64 { return evalInterval.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   p,
	})
	defer engine.Close()
	ctx := context.Background()
	query := func(ctx context.Context, qs string, t time.Time) (promql.Vector, error) {
		q, err := engine.NewInstantQuery(ctx, store, nil, qs, t)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		res := q.Exec(ctx)
		if res.Err != nil {
			return nil, res.Err
		}
		switch v := res.Value.(type) {
		case promql.Vector:
			// The result's memory goes back to the engine at Close.
			return slices.Clone(v), nil
		case promql.Scalar:
			return promql.Vector{{T: v.T, F: v.V, Metric: labels.EmptyLabels()}}, nil
		}
		return nil, fmt.Errorf("rule result is not a vector or scalar: %s", res.Value.Type())
	}

	var last time.Duration
	for _, at := range tg.AlertRuleTests {
		last = max(last, time.Duration(at.EvalTime))
	}
	active := make([]map[uint64]*alertState, len(rules))
	for i := range active {
		active[i] = map[uint64]*alertState{}
	}
	epoch := time.Unix(0, 0).UTC()
	var errs []error
	for step := time.Duration(0); step <= last; step += evalInterval {
		ts := epoch.Add(step)
		for i, r := range rules {
			if err := r.eval(ctx, ts, query, active[i]); err != nil {
				return fmt.Errorf("    rule %s, time %s: %w", r.name, step, err)
			}
		}
		for _, at := range tg.AlertRuleTests {
			if t := time.Duration(at.EvalTime); t < step || t >= step+evalInterval {
				continue
			}
			if at.Alertname == "" {
				return fmt.Errorf("    an alert_rule_test at eval_time %s names no alertname", at.EvalTime)
			}
			var got []string
			for i, r := range rules {
				if r.name != at.Alertname {
					continue
				}
				for _, a := range active[i] {
					if a.firing {
						got = append(got, describeAlert(a.labels, a.annotations))
					}
				}
			}
			var want []string
			for _, e := range at.ExpAlerts {
				l := labels.NewBuilder(labels.FromMap(e.ExpLabels))
				l.Set(labels.AlertName, at.Alertname)
				want = append(want, describeAlert(l.Labels(), labels.FromMap(e.ExpAnnotations)))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				errs = append(errs, fmt.Errorf("    alertname: %s, time: %s,\n        exp: %v,\n        got: %v",
					at.Alertname, at.EvalTime, bracket(want), bracket(got)))
			}
		}
	}
	return errors.Join(errs...)
}

func describeAlert(l, a labels.Labels) string {
	return fmt.Sprintf("{Labels:%s Annotations:%s}", l, a)
}

func bracket(alerts []string) string { return "[" + strings.Join(alerts, " ") + "]" }

// eval is one evaluation of the rule at ts, with the semantics of
// Prometheus's rules.AlertingRule.Eval (without keep_firing_for): a new
// result is pending and fires once it has been present for the rule's
// `for`; a pending alert missing from the result is dropped, a firing one
// resolves.
func (r alertingRule) eval(ctx context.Context, ts time.Time, query template.QueryFunc, active map[uint64]*alertState) error {
	res, err := query(ctx, r.expr, ts)
	if err != nil {
		return err
	}
	seen := map[uint64]bool{}
	for _, smpl := range res {
		data := template.AlertTemplateData(smpl.Metric.Map(), nil, "", smpl)
		expand := func(text string) string {
			defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
			out, err := template.NewTemplateExpander(ctx, defs+text, "__alert_"+r.name, data,
				model.Time(ts.UnixMilli()), query, nil, nil).Expand()
			if err != nil {
				return fmt.Sprintf("<error expanding template: %s>", err)
			}
			return out
		}
		lb := labels.NewBuilder(smpl.Metric)
		lb.Del(labels.MetricName)
		for k, v := range r.labels {
			lb.Set(k, expand(v))
		}
		lb.Set(labels.AlertName, r.name)
		ab := labels.NewBuilder(labels.EmptyLabels())
		for k, v := range r.annotations {
			ab.Set(k, expand(v))
		}
		lset := lb.Labels()
		h := lset.Hash()
		if seen[h] {
			return fmt.Errorf("vector contains metrics with the same labelset after applying alert labels: %s", lset)
		}
		seen[h] = true
		if a, ok := active[h]; ok {
			a.annotations = ab.Labels()
			continue
		}
		active[h] = &alertState{labels: lset, annotations: ab.Labels(), activeAt: ts}
	}
	for h, a := range active {
		if !seen[h] {
			delete(active, h)
			continue
		}
		if !a.firing && ts.Sub(a.activeAt) >= r.hold {
			a.firing = true
		}
	}
	return nil
}

// selectedNames returns the metric names expr's vector selectors select.
func selectedNames(expr string) ([]string, error) {
	e, err := promqlParser().ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual && !slices.Contains(names, m.Value) {
				names = append(names, m.Value)
			}
		}
		return nil
	})
	return names, nil
}
