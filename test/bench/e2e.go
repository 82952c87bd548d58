package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dbsync/dbsync/test/testenv"
)

// pollInterval is how often the broker's message count is polled.
const pollInterval = 10 * time.Millisecond

// streamStartedLog is what the producer logs once its binlog stream is up.
const streamStartedLog = "binlog stream started"

// e2eResult is one end-to-end measurement.
type e2eResult struct {
	Run              int
	Workload, Broker string
	Rows             int
	// Elapsed runs from the producer's start until the broker held every
	// row's message.
	Elapsed time.Duration
	// Startup is from the producer's start until it logged that its binlog
	// stream started (0 when not seen).
	Startup time.Duration
	// PeakRSS is the producer's peak resident set size in bytes (-1 when
	// unknown).
	PeakRSS int64
	// CPUPerRow is the producer process's CPU time (user and system, its
	// startup included; with the embedded broker the server's too) per
	// row, in microseconds, 0 when unknown: less noisy than the rate on a
	// shared machine.
	CPUPerRow float64
	// RowsPerBatch is the mean size of the batches the producer published
	// (its dbsync_batch_rows histogram; 0 when unknown): a diagnostic of
	// how well it grouped the workload's rows.
	RowsPerBatch float64
}

// RowsPerSec is the measured rate.
func (r e2eResult) RowsPerSec() float64 { return perSecond(r.Rows, r.Elapsed) }

// countProgress is what waitCount observed.
type countProgress struct {
	// Reached is when the count first was at least the wanted one.
	Reached time.Time
	// StreamStarted is when the producer's log first showed its binlog
	// stream started (zero when not seen before Reached).
	StreamStarted time.Time
}

// waitCount polls the broker until subject holds at least want messages.
// It fails when the producer exits first, ctx is done or timeout passes.
func waitCount(ctx context.Context, br *broker, p *producerProc, subject string, want int, timeout time.Duration) (countProgress, error) {
	var prog countProgress
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	got := 0
	for {
		if prog.StreamStarted.IsZero() && p.hasLogged(streamStartedLog) {
			prog.StreamStarted = time.Now()
		}
		var err error
		if got, err = br.count(ctx, subject); err != nil {
			return prog, err
		}
		if got >= want {
			prog.Reached = time.Now()
			return prog, nil
		}
		if p.child.Exited() {
			return prog, p.exitError()
		}
		if time.Now().After(deadline) {
			return prog, fmt.Errorf("%s holds %d messages, want %d within %s; producer log ends with:\n%s",
				subject, got, want, timeout, tail(p.log.String(), 20))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return prog, fmt.Errorf("waiting for %d messages on %s (have %d): %w", want, subject, got, ctx.Err())
		}
	}
}

// measureE2E runs the producer, checkpoints on and default settings
// otherwise, from w's start position with Tables.Include restricted to w's
// table, into a fresh broker; the clock runs from the process start until
// the broker holds all w.Rows messages. The peak RSS is read then, before
// the producer is stopped with SIGTERM; it must exit 0 and the broker must
// hold exactly w.Rows messages.
func measureE2E(ctx context.Context, parent *benchTB, bin string, db *testenv.MariaDB, brokerName string, w *workload, profileDir string) (e2eResult, error) {
	tb := parent.scope("e2e-" + w.Name + "-" + brokerName)
	defer tb.close()
	fail := func(err error) (e2eResult, error) {
		return e2eResult{}, fmt.Errorf("end to end %s on %s: %w", w.Name, brokerName, err)
	}
	br, err := startBroker(tb, brokerName)
	if err != nil {
		return fail(err)
	}
	setup, err := newProducerSetup(tb, bin, db, br, []string{w.fullTable()}, profileDir != "")
	if err != nil {
		return fail(err)
	}
	if err := setup.setCheckpoint(ctx, w.Start); err != nil {
		return fail(err)
	}
	p, err := setup.start(tb)
	if err != nil {
		return fail(err)
	}
	if profileDir != "" {
		go profileRun(p, setup, filepath.Join(profileDir, w.Name+"-"+brokerName))
	}
	subject := br.subject(w.fullTable())
	prog, err := waitCount(ctx, br, p, subject, w.Rows, 10*time.Minute)
	if err != nil {
		return fail(err)
	}
	res := e2eResult{Workload: w.Name, Broker: brokerName, Rows: w.Rows, Elapsed: prog.Reached.Sub(p.started), PeakRSS: -1}
	if !prog.StreamStarted.IsZero() {
		res.Startup = prog.StreamStarted.Sub(p.started)
	}
	if rss, err := p.child.PeakRSS(); err == nil {
		res.PeakRSS = rss
	} else {
		return fail(err)
	}
	res.RowsPerBatch = setup.rowsPerBatch()
	if cpu, err := processCPU(p.child.Pid()); err == nil {
		res.CPUPerRow = cpu * 1e6 / float64(w.Rows)
	}
	if !br.embedded { // the embedded broker stops with the producer: count now
		if err := p.stop(); err != nil {
			return fail(err)
		}
	}
	got, err := br.count(ctx, subject)
	if err != nil {
		return fail(err)
	}
	if br.embedded {
		if err := p.stop(); err != nil {
			return fail(err)
		}
	}
	if got != w.Rows {
		return fail(fmt.Errorf("broker holds %d messages on %s after the stop, want exactly %d", got, subject, w.Rows))
	}
	return res, nil
}

// rowsPerBatch reads the running producer's dbsync_batch_rows histogram
// from its metrics endpoint and returns the mean rows per batch, 0 when
// the endpoint or the histogram cannot be read (a diagnostic only).
func (s *producerSetup) rowsPerBatch() float64 {
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum, count float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "dbsync_batch_rows_sum":
			sum, _ = strconv.ParseFloat(value, 64)
		case "dbsync_batch_rows_count":
			count, _ = strconv.ParseFloat(value, 64)
		}
	}
	if count == 0 {
		return 0
	}
	return sum / count
}
