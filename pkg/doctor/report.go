// Package doctor is dbsync's preflight check: it inspects the source server,
// the broker and the checkpoint store a configuration names and reports, for
// each thing dbsync depends on, whether it is right (OK), works but loses
// something or risks data (WARN), or stops dbsync (FAIL), with the SQL
// statement or configuration change that fixes it.
//
// The checks only read: they never create the checkpoint file, a stream or a
// replica registration. Run runs them all for a config; SourceChecks runs
// the source server's checks on an open connection, and Preflight turns
// them into the producer's start-up check.
package doctor

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Status is a check's verdict.
type Status int

// The verdicts, from good to bad.
const (
	// OK: nothing to do.
	OK Status = iota
	// WARN: dbsync runs, but loses information or risks losing changes.
	WARN
	// FAIL: dbsync refuses to start (or would fail soon after).
	FAIL
)

// String returns "OK", "WARN" or "FAIL".
func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case WARN:
		return "WARN"
	case FAIL:
		return "FAIL"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Names of the checks (Finding.Check).
const (
	CheckSource      = "source"
	CheckSourceTLS   = "source_tls"
	CheckLogBin      = "log_bin"
	CheckFormat      = "binlog_format"
	CheckRowImage    = "binlog_row_image"
	CheckRowMetadata = "binlog_row_metadata"
	CheckCompression = "binlog_transaction_compression"
	CheckServerID    = "server_id"
	CheckGrants      = "grants"
	CheckRetention   = "retention"
	CheckDump        = "binlog_dump"
	CheckBroker      = "broker"
	CheckCheckpoint  = "checkpoint"
)

// Finding is the result of one check.
type Finding struct {
	// Check names what was checked, one of the Check* constants.
	Check  string
	Status Status
	// Detail says what was found.
	Detail string
	// Fix is the SQL statement or configuration change that resolves a WARN
	// or FAIL; empty for OK.
	Fix string
}

// Report is the outcome of Run.
type Report struct {
	Findings []Finding
}

// Failed reports whether any finding is a FAIL.
func (r Report) Failed() bool {
	for _, f := range r.Findings {
		if f.Status == FAIL {
			return true
		}
	}
	return false
}

// Err returns nil when no finding is a FAIL, else one error listing every
// FAIL with its detail and fix, one per line.
func (r Report) Err() error {
	var b strings.Builder
	n := 0
	for _, f := range r.Findings {
		if f.Status != FAIL {
			continue
		}
		n++
		fmt.Fprintf(&b, "\n  %s: %s", f.Check, f.Detail)
		if f.Fix != "" {
			fmt.Fprintf(&b, "\n    fix: %s", f.Fix)
		}
	}
	if n == 0 {
		return nil
	}
	noun := "checks"
	if n == 1 {
		noun = "check"
	}
	return fmt.Errorf("preflight: %d %s failed:%s", n, noun, b.String())
}

// Print writes the findings as a table: status, check and detail on one
// line, the fix (if any) indented on the next, then a summary line.
func (r Report) Print(w io.Writer) {
	width := len("CHECK")
	for _, f := range r.Findings {
		width = max(width, len(f.Check))
	}
	fmt.Fprintf(w, "%-6s %-*s %s\n", "STATUS", width, "CHECK", "DETAIL")
	indent := strings.Repeat(" ", 7+width+1)
	var counts [3]int
	for _, f := range r.Findings {
		if f.Status >= OK && f.Status <= FAIL {
			counts[f.Status]++
		}
		fmt.Fprintf(w, "%-6s %-*s %s\n", f.Status, width, f.Check, f.Detail)
		if f.Fix != "" {
			fmt.Fprintf(w, "%sfix: %s\n", indent, f.Fix)
		}
	}
	fmt.Fprintf(w, "%d OK, %d WARN, %d FAIL\n", counts[OK], counts[WARN], counts[FAIL])
}
