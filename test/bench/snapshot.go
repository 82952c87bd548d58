package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// snapshotTable is the table the snapshot measurement reads.
const snapshotTable = "snap"

// snapshotChunkRows is the chunk size of both the ceiling and the
// producer run (Snapshot.ChunkRows' default).
const snapshotChunkRows = 4096

// Snapshot targets (issue 14): end to end at least this fraction of the
// lower ceiling, and above this rate on NATS Streaming.
const (
	targetSnapshotFraction = 0.5
	targetSnapshotRate     = 100_000
)

// snapshotResult is the one-off measurement of a snapshot of an existing
// table.
type snapshotResult struct {
	Rows int
	// Ceiling is the chunked reads alone (rows/s).
	Ceiling float64
	// E2E are the producer runs, one per broker; Sink the sink ceiling of
	// the same broker in this command (the bulk workload's envelopes, of
	// the same table shape), NaN when not measured.
	E2E  []e2eResult
	Sink map[string]float64
}

// writeSnapshotTable fills bench.snap with rows rows (before the other
// workloads: no run's stretch of the binlog reads through it).
func writeSnapshotTable(ctx context.Context, tb *benchTB, db *testenv.MariaDB, rows int) error {
	return writeTable(ctx, tb, db, snapshotTable, rows)
}

// writeTable creates bench.<table> and fills it with rows rows as
// writeBulk does.
func writeTable(ctx context.Context, tb *benchTB, db *testenv.MariaDB, table string, rows int) error {
	createTables(tb, db, table)
	conn, err := sql.Open("mysql", db.DSN(""))
	if err != nil {
		return fmt.Errorf("open mariadb %s: %w", db.Addr(), err)
	}
	defer conn.Close()
	if err := writeBulk(ctx, conn, table, rows); err != nil {
		return err
	}
	if n, err := countRows(ctx, conn, benchDB+"."+table); err != nil || n != rows {
		return fmt.Errorf("table %s holds %d rows, want %d (%v)", table, n, rows, err)
	}
	return nil
}

// measureSnapshotCeiling reads bench.snap with pkg/binlog's snapshot reader
// in chunks of snapshotChunkRows (each one SELECT in a consistent-snapshot
// transaction, its watermarks, its values decoded as the producer does),
// publishing nothing.
func measureSnapshotCeiling(ctx context.Context, db *testenv.MariaDB, rows int) (float64, error) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := binlog.Config{Host: db.Host, Port: uint16(db.Port), User: db.User, Password: db.Password, ServerID: sourceServerID}
	began := time.Now()
	rd, err := binlog.OpenSnapshotReader(ctx, cfg, log)
	if err != nil {
		return 0, fmt.Errorf("snapshot ceiling: %w", err)
	}
	defer rd.Close()
	plan, err := rd.Plan(ctx, benchDB, snapshotTable)
	if err != nil {
		return 0, fmt.Errorf("snapshot ceiling: %w", err)
	}
	var after []position.KeyValue
	read := 0
	for {
		c, err := rd.ReadChunk(ctx, plan, after, snapshotChunkRows)
		if err != nil {
			return 0, fmt.Errorf("snapshot ceiling after %d rows: %w", read, err)
		}
		read += c.Rows
		after = c.After
		if c.Last {
			break
		}
	}
	if read != rows {
		return 0, fmt.Errorf("snapshot ceiling: read %d rows, the table has %d", read, rows)
	}
	return perSecond(read, time.Since(began)), nil
}

// measureSnapshotE2E runs the producer on a first start with
// Snapshot.Mode initial and Tables.Include bench.snap: from the process
// start until the broker holds every row.
func measureSnapshotE2E(ctx context.Context, parent *benchTB, bin string, db *testenv.MariaDB, brokerName string, rows int) (e2eResult, error) {
	tb := parent.scope("snapshot-" + brokerName)
	defer tb.close()
	fail := func(err error) (e2eResult, error) {
		return e2eResult{}, fmt.Errorf("snapshot end to end on %s: %w", brokerName, err)
	}
	br, err := startBroker(tb, brokerName)
	if err != nil {
		return fail(err)
	}
	table := benchDB + "." + snapshotTable
	setup, err := newProducerSetup(tb, bin, db, br, []string{table}, false)
	if err != nil {
		return fail(err)
	}
	if err := setup.addConfig("Snapshot", map[string]any{"Mode": "initial", "ChunkRows": snapshotChunkRows}); err != nil {
		return fail(err)
	}
	p, err := setup.start(tb)
	if err != nil {
		return fail(err)
	}
	prog, err := waitCount(ctx, br, p, br.subject(table), rows, 10*time.Minute)
	if err != nil {
		return fail(err)
	}
	res := e2eResult{Workload: "snapshot", Broker: brokerName, Rows: rows, Elapsed: prog.Reached.Sub(p.started), PeakRSS: -1}
	if !prog.StreamStarted.IsZero() {
		res.Startup = prog.StreamStarted.Sub(p.started)
	}
	if res.PeakRSS, err = p.child.PeakRSS(); err != nil {
		return fail(err)
	}
	if err := p.stop(); err != nil {
		return fail(err)
	}
	return res, nil
}

// addConfig sets one more section of the producer's config file.
func (s *producerSetup) addConfig(section string, value any) error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return err
	}
	cfg[section] = value
	if data, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		return err
	}
	return os.WriteFile(s.path, data, 0o600)
}

// measureSnapshot measures the snapshot once: the ceiling, then end to
// end on every broker.
func (b *bench) measureSnapshot(ctx context.Context) error {
	rows := b.opts.SnapshotRows
	ceiling, err := measureSnapshotCeiling(ctx, b.db, rows)
	if err != nil {
		return err
	}
	res := &snapshotResult{Rows: rows, Ceiling: ceiling, Sink: map[string]float64{}}
	b.progress("snapshot: ceiling (chunked reads alone) %s rows/s", fmtCount(ceiling))
	for _, broker := range b.opts.Brokers {
		e, err := measureSnapshotE2E(ctx, b.tb, b.bin, b.db, broker, rows)
		if err != nil {
			return err
		}
		res.E2E = append(res.E2E, e)
		b.progress("snapshot: end to end on %s %s rows/s (%s rows in %s), peak RSS %.1f MiB",
			broker, fmtCount(e.RowsPerSec()), fmtCount(float64(rows)), e.Elapsed.Round(time.Millisecond), mib(e.PeakRSS))
		res.Sink[broker] = math.NaN()
		for _, s := range b.res.summarize([]string{"bulk"}, []string{broker}) {
			if s.Workload == "bulk" && s.Broker == broker {
				res.Sink[broker] = s.SinkCeiling()
			}
		}
	}
	b.res.Snapshot = res
	return nil
}

// snapshotTables renders the snapshot measurement and its targets.
func snapshotTables(r *snapshotResult) (measured string, targets [][]string) {
	cols := []column{{Title: "broker"}, {Title: "rows"}, {Title: "snapshot ceiling rows/s", Right: true},
		{Title: "sink ceiling msgs/s", Right: true}, {Title: "end to end rows/s", Right: true},
		{Title: "e2e / min(ceilings)", Right: true}, {Title: "peak RSS MiB", Right: true}}
	var cells [][]string
	for _, e := range r.E2E {
		lower := r.Ceiling
		if s := r.Sink[e.Broker]; !math.IsNaN(s) {
			lower = math.Min(lower, s)
		}
		f := e.RowsPerSec() / lower
		cells = append(cells, []string{e.Broker, fmtCount(float64(e.Rows)), fmtCount(r.Ceiling), fmtCount(r.Sink[e.Broker]),
			fmtCount(e.RowsPerSec()), fmtFloat(f, 2), fmtFloat(mib(e.PeakRSS), 1)})
		verdict := "NO"
		if f >= targetSnapshotFraction {
			verdict = "yes"
		}
		targets = append(targets, []string{
			fmt.Sprintf("snapshot on %s: ≥ %.0f%% of the lower ceiling", e.Broker, targetSnapshotFraction*100),
			fmt.Sprintf("%s (%s of %s rows/s)", fmtPercent(f), fmtCount(e.RowsPerSec()), fmtCount(lower)), verdict})
		if e.Broker == BrokerStan {
			verdict = "NO"
			if e.RowsPerSec() > targetSnapshotRate {
				verdict = "yes"
			}
			targets = append(targets, []string{
				fmt.Sprintf("snapshot on stan: > %s rows/s", fmtCount(targetSnapshotRate)),
				fmt.Sprintf("%s rows/s", fmtCount(e.RowsPerSec())), verdict})
		}
	}
	return formatTable(cols, cells), targets
}
