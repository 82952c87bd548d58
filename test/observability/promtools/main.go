// Command promtools checks and renders dbsync's Prometheus rules and Grafana
// dashboard with Prometheus's own packages (pinned in this module's go.mod):
//
//	promtools check-rules FILE...   validate rules files as `promtool check rules` does
//	promtools test-rules FILE...    run rule unit tests in promtool's test format
//	promtools names                 read a JSON array of PromQL expressions on stdin,
//	                                print the metric names each selects (JSON)
//	promtools render [flags]        plot dashboard panels over a recorded run (PNG)
//
// test/observability builds and runs it; it exits 1 when a check fails and
// 2 on a usage error.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: promtools check-rules|test-rules|names|render ...")
		return 2
	}
	var err error
	switch args[0] {
	case "check-rules":
		err = checkRulesFiles(args[1:], stdout)
	case "test-rules":
		err = testRulesFiles(args[1:], stdout)
	case "names":
		err = printNames(stdin, stdout)
	case "render":
		err = render(args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "promtools: unknown command %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "promtools %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
