package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// promqlParser parses PromQL as Prometheus does with no feature flags.
func promqlParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// loadRules parses and validates a rules file the way Prometheus loads it
// (unknown fields are errors, every expression and template is checked)
// and refuses duplicate rules, like `promtool check rules`.
func loadRules(file string) (*rulefmt.RuleGroups, error) {
	groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, promqlParser(), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	seen := map[string]bool{}
	var dups []error
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			key := fmt.Sprintf("%s\x00%s\x00%v", name, r.Expr, r.Labels)
			if seen[key] {
				dups = append(dups, fmt.Errorf("%s: group %q: duplicate rule %q", file, g.Name, name))
			}
			seen[key] = true
		}
	}
	if len(dups) > 0 {
		return nil, errors.Join(dups...)
	}
	return groups, nil
}

// checkRulesFiles validates every file and reports how many rules each has.
func checkRulesFiles(files []string, out io.Writer) error {
	if len(files) == 0 {
		return errors.New("no rules file given")
	}
	var failed []error
	for _, f := range files {
		groups, err := loadRules(f)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		n := 0
		for _, g := range groups.Groups {
			n += len(g.Rules)
		}
		fmt.Fprintf(out, "%s: SUCCESS: %d rules found\n", f, n)
	}
	return errors.Join(failed...)
}
