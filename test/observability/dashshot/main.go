// Command dashshot renders the dashboard's main panels for a real producer
// run into a PNG (docs/images/dashboard.png): it starts MariaDB, NATS with
// JetStream and the producer binary the way the tests do, writes the bench
// tables' workload (single-row transactions inserting, updating and
// deleting, and 1,000-row bulk inserts) at a steady rate, scrapes /metrics
// every two seconds, stops the broker for a while (the producer stalls),
// later freezes the producer with SIGSTOP, and plots the dashboard's own
// queries over the scrapes with Prometheus's query engine (promtools
// render).
//
//	go run ./test/observability/dashshot [-out docs/images/dashboard.png]
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/observability"
)

// stallTimeout is the producer's HTTP.StallTimeout: short, so that the
// broker outage shows the stall.
const stallTimeout = 20 * time.Second

// options are the command's flags.
type options struct {
	out, runOut                   string
	healthy, outage, calm, freeze time.Duration
	rate                          float64
	interval                      time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "docs/images/dashboard.png", "PNG to write (relative to the repository root)")
	flag.StringVar(&o.runOut, "run-out", "", "also keep the recorded scrapes (JSON) here")
	flag.DurationVar(&o.healthy, "healthy", time.Minute, "healthy stretch at the start and at the end")
	flag.DurationVar(&o.outage, "outage", 50*time.Second, "how long the broker is stopped")
	flag.DurationVar(&o.calm, "calm", 75*time.Second, "healthy stretch between the outage and the freeze (over a minute, so that the producer's retry backoff is back at its minimum)")
	flag.DurationVar(&o.freeze, "freeze", 30*time.Second, "how long the producer is frozen (SIGSTOP)")
	flag.Float64Var(&o.rate, "rate", 100, "single-row transactions per second (each insert is followed by an update)")
	flag.DurationVar(&o.interval, "interval", 2*time.Second, "scrape interval")
	flag.Parse()
	tb := newProgramTB()
	err := run(tb, o)
	tb.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashshot:", err)
	}
	if err != nil || tb.Failed() {
		os.Exit(1)
	}
}

func run(tb *programTB, o options) error {
	root, err := observability.RepoRoot()
	if err != nil {
		return err
	}
	tb.Logf("building the producer and promtools")
	producer, cleanProducer, err := e2e.BuildProducer()
	if err != nil {
		return err
	}
	tb.Cleanup(cleanProducer)
	promtools, err := observability.BuildPromtools(root, tb.TempDir())
	if err != nil {
		return err
	}

	e := e2e.NewEnvBroker(tb, producer, e2e.JetStream)
	e.Set("HTTP.StallTimeout", stallTimeout.String())
	e.Set("Log.Level", "info")
	e.DB.Exec(tb, "CREATE DATABASE bench",
		"CREATE TABLE bench.tx (id INT PRIMARY KEY, name VARCHAR(64), qty INT, price DECIMAL(10,2), at DATETIME(6))",
		"CREATE TABLE bench.bulk (id INT PRIMARY KEY, name VARCHAR(64), qty INT, price DECIMAL(10,2), at DATETIME(6))")
	p := e.Start()
	e2e.WaitLog(tb, p, "binlog stream started")

	ctx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan error, 1)
	go func() { loadDone <- writeLoad(ctx, e.DB.DSN("bench"), o.rate) }()
	title := fmt.Sprintf("dbsync producer under the bench workload: healthy, broker stopped, producer frozen (scraped every %s, HTTP.StallTimeout %s)", o.interval, stallTimeout)
	rec := observability.Record(e.HTTPAddr, title, o.interval)

	phase := func(what string, d time.Duration) {
		tb.Logf("%s for %s", what, d)
		time.Sleep(d)
	}
	phase("healthy", o.healthy)
	endOutage := rec.Mark("broker stopped")
	e.StopBroker()
	phase("broker stopped", o.outage)
	e.StartBroker()
	endOutage()
	phase("catching up, then healthy", o.calm)
	endFreeze := rec.Mark("producer frozen (SIGSTOP)")
	p.Freeze()
	phase("producer frozen", o.freeze)
	p.Thaw()
	endFreeze()
	phase("healthy again", o.healthy)

	runData := rec.Stop()
	stopLoad()
	if err := <-loadDone; err != nil {
		return err
	}
	if code := p.Stop(); code != 0 {
		return fmt.Errorf("producer exit %d:\n%s", code, p.Output())
	}
	runFile := o.runOut
	if runFile == "" {
		runFile = filepath.Join(tb.TempDir(), "run.json")
	}
	if err := observability.WriteRun(runData, runFile); err != nil {
		return err
	}
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if _, err := observability.Promtools(promtools, nil, "render",
		"-dashboard", filepath.Join(observability.ObservabilityDir(root), "dashboard.json"),
		"-run", runFile, "-panels", strings.Join(observability.MainPanels(), ";"), "-out", out); err != nil {
		return err
	}
	taken, answered := 0, 0
	for _, s := range runData.Scrapes {
		taken++
		if s.OK {
			answered++
		}
	}
	tb.Logf("wrote %s from %d scrapes (%d answered)", out, taken, answered)
	return nil
}

// writeLoad writes the bench tables' workload until ctx is done: rate
// single-row transactions a second on two connections (an insert into
// bench.tx, then an update of it, and every tenth a delete of an older
// row) and a 1,000-row INSERT ... SELECT into bench.bulk every 15 seconds.
func writeLoad(ctx context.Context, dsn string, rate float64) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(3)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for w := range 2 {
		wg.Go(func() {
			tick := time.NewTicker(time.Duration(float64(time.Second) * 2 / rate))
			defer tick.Stop()
			for id := w + 1; ; id += 2 {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				stmts := []string{
					fmt.Sprintf("INSERT INTO tx VALUES (%d, 'item-%d', %d, %d.50, NOW(6))", id, id, rand.IntN(100), rand.IntN(1000)),
					fmt.Sprintf("UPDATE tx SET qty = qty + 1 WHERE id = %d", id),
				}
				if id%10 < 2 && id > 100 {
					stmts = append(stmts, fmt.Sprintf("DELETE FROM tx WHERE id = %d", id-100))
				}
				for _, s := range stmts {
					if _, err := db.ExecContext(ctx, s); err != nil && ctx.Err() == nil {
						errs <- fmt.Errorf("%s: %w", s, err)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(15 * time.Second)
		defer tick.Stop()
		for first := 1; ; first += 1000 {
			q := fmt.Sprintf("INSERT INTO bulk SELECT seq, CONCAT('item-', seq), seq %% 100, seq / 100, NOW(6) FROM seq_%d_to_%d", first, first+999)
			if _, err := db.ExecContext(ctx, q); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", q, err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}
