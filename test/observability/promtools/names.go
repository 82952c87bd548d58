package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// exprNames is what `promtools names` prints for one expression.
type exprNames struct {
	Expr  string   `json:"expr"`
	Names []string `json:"names,omitempty"`
	Error string   `json:"error,omitempty"`
}

// printNames reads a JSON array of PromQL expressions and prints, for
// each, the metric names its selectors read, or why it does not parse. A
// selector without a literal metric name (`{__name__=~"..."}`) is an
// error: the names are what a caller checks against an exporter.
func printNames(in io.Reader, out io.Writer) error {
	var exprs []string
	if err := json.NewDecoder(in).Decode(&exprs); err != nil {
		return fmt.Errorf("stdin: want a JSON array of expressions: %w", err)
	}
	res := make([]exprNames, 0, len(exprs))
	for _, e := range exprs {
		names, err := literalNames(e)
		r := exprNames{Expr: e, Names: names}
		if err != nil {
			r.Error = err.Error()
		}
		res = append(res, r)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// literalNames parses expr and returns the metric names of its selectors,
// sorted, failing on a selector that names no metric literally.
func literalNames(expr string) ([]string, error) {
	e, err := promqlParser().ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || err != nil {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				if !slices.Contains(names, m.Value) {
					names = append(names, m.Value)
				}
				return nil
			}
		}
		err = fmt.Errorf("selector %s names no metric literally", vs)
		return nil
	})
	slices.Sort(names)
	return names, err
}
