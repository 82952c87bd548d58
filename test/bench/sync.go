package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// syncTable is the table the sync measurement keeps in its targets.
const syncTable = "synced"

// syncColumns are the columns of every benchmark table (tableColumns), in
// order.
var syncColumns = []string{"id", "name", "qty", "price", "at"}

// syncCeilingBatch is how many rows one Redis pipeline or one PostgreSQL
// transaction of the targets' ceilings writes (the sync's default
// Batch.MaxChanges).
const syncCeilingBatch = client.DefaultBatchMaxChanges

// Sync targets, in report order (the sync's Target values).
const (
	syncTargetRedis    = "redis"
	syncTargetPostgres = "postgres"
)

// syncVersionField is the version field or column the sinks write beside
// the row's columns (their default "_dbsync"); the ceilings write one too.
const syncVersionField = "_dbsync"

// syncStopTimeout bounds a graceful stop (SIGTERM) of the sync.
const syncStopTimeout = 60 * time.Second

// syncStartedLog is what the sync logs once it subscribed to its tables.
const syncStartedLog = "sync started"

// syncResult is the one-off measurement of the sync command on a table of
// Rows rows, one per target.
type syncResult struct {
	Rows int
	// Publish is how long the producer took to publish the table (a
	// snapshot) to JetStream, before any sync ran.
	Publish time.Duration
	Targets []syncTargetResult
}

// syncTargetResult is one target's ceiling and sync.
type syncTargetResult struct {
	Target string
	Rows   int
	// Ceiling is how long writing every row took without dbsync
	// (pipelined HSETs, or multi-row upserts in transactions).
	Ceiling time.Duration
	// Sync runs from the sync process's start until the target held every
	// row; Startup until it logged that it subscribed (0 when not seen).
	Sync, Startup time.Duration
	// PeakRSS is the sync's peak resident set size in bytes (-1 when
	// unknown).
	PeakRSS int64
}

// CeilingRowsPerSec is the target's own rate.
func (r syncTargetResult) CeilingRowsPerSec() float64 { return perSecond(r.Rows, r.Ceiling) }

// SyncRowsPerSec is the sync's rate.
func (r syncTargetResult) SyncRowsPerSec() float64 { return perSecond(r.Rows, r.Sync) }

// Fraction is the sync's rate over the ceiling's.
func (r syncTargetResult) Fraction() float64 { return ratio(r.SyncRowsPerSec(), r.CeilingRowsPerSec()) }

// syncResultTable renders the sync measurement.
func syncResultTable(r *syncResult) string {
	cols := []column{{Title: "target"}, {Title: "ceiling rows/s", Right: true}, {Title: "sync rows/s", Right: true},
		{Title: "sync / ceiling", Right: true}}
	var cells [][]string
	for _, t := range r.Targets {
		cells = append(cells, []string{t.Target, fmtCount(t.CeilingRowsPerSec()), fmtCount(t.SyncRowsPerSec()), fmtFloat(t.Fraction(), 2)})
	}
	return formatTable(cols, cells)
}

// syncMarkdown is the sync section of docs/benchmarks.md: what was
// measured, and the table.
func syncMarkdown(r *syncResult) string {
	return fmt.Sprintf("The table `%s.%s` (the shape above) is published once by a producer on its first start with "+
		"`Snapshot.Mode: \"initial\"` to a NATS server with JetStream of its own (its %s rows in %s), and the producer stopped. Then, per "+
		"target, a fresh server (redis-server; PostgreSQL with fsync on) takes the same rows twice:\n\n"+
		"- **ceiling**: without dbsync, the rows as the sink writes them (the envelope's JSON form of every column, and "+
		"a version field or column like the sink's), one connection, %d rows at a time: Redis, a go-redis pipeline of one HSET per "+
		"row (key `%s:%s:<id>`); PostgreSQL, one multi-row `INSERT ... ON CONFLICT (id) DO UPDATE` per transaction (pgx) "+
		"into a table of the sync target's columns. The clock runs from the first write until the last reply.\n"+
		"- **sync**: the sync command (`cmd/sync`, built from the current source, default settings: `Batch.MaxChanges` "+
		"%d, JSON fields), a fresh `ClientID` so that it consumes the whole backlog, into the empty target: from the process "+
		"start (its startup included) until the target holds every row (the last row polled every %s, then a count).\n\n%s",
		benchDB, syncTable, fmtCount(float64(r.Rows)), r.Publish.Round(time.Millisecond), syncCeilingBatch,
		benchDB, syncTable, client.DefaultBatchMaxChanges, pollInterval, syncResultTable(r))
}

// buildSync builds cmd/sync from the current source like the producer
// (static, CGO_ENABLED=0) into a directory of tb's scope.
func buildSync(tb *benchTB) (string, error) {
	bin := filepath.Join(tb.TempDir(), "sync")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/dbsync/dbsync/cmd/sync")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/sync: %w\n%s", err, out)
	}
	return bin, nil
}

// writeSyncTable fills bench.synced with rows rows (before the other
// workloads: no run's stretch of the binlog reads through it).
func writeSyncTable(ctx context.Context, tb *benchTB, db *testenv.MariaDB, rows int) error {
	return writeTable(ctx, tb, db, syncTable, rows)
}

// syncRow is one row of the sync table as the sinks write it: its key
// (the Redis key, the primary key's value), its columns' values in the
// envelope's JSON form, in syncColumns' order, and a version.
type syncRow struct {
	ID      int64
	Values  []json.RawMessage
	Version string
}

// readSyncRows reads bench.synced with pkg/binlog's snapshot reader: every
// row as the envelope's "after" object holds it, the bytes the sync's
// changes carry.
func readSyncRows(ctx context.Context, db *testenv.MariaDB, want int) ([]syncRow, error) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := binlog.Config{Host: db.Host, Port: uint16(db.Port), User: db.User, Password: db.Password, ServerID: sourceServerID}
	rd, err := binlog.OpenSnapshotReader(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("read the sync table: %w", err)
	}
	defer rd.Close()
	plan, err := rd.Plan(ctx, benchDB, syncTable)
	if err != nil {
		return nil, fmt.Errorf("read the sync table: %w", err)
	}
	rows := make([]syncRow, 0, want)
	var after []position.KeyValue
	for {
		c, err := rd.ReadChunk(ctx, plan, after, snapshotChunkRows)
		if err != nil {
			return nil, fmt.Errorf("read the sync table after %d rows: %w", len(rows), err)
		}
		for _, img := range c.Images() {
			r, err := parseSyncRow(img, len(rows))
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
		after = c.After
		if c.Last {
			break
		}
	}
	if len(rows) != want {
		return nil, fmt.Errorf("read %d rows of the sync table, it has %d", len(rows), want)
	}
	return rows, nil
}

// parseSyncRow splits one row image into syncColumns' values; i numbers
// the row (for its version).
func parseSyncRow(img []byte, i int) (syncRow, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(img, &m); err != nil {
		return syncRow{}, fmt.Errorf("sync table row image %s: %w", img, err)
	}
	if len(m) != len(syncColumns) {
		return syncRow{}, fmt.Errorf("sync table row image %s: want the columns %v", img, syncColumns)
	}
	r := syncRow{Values: make([]json.RawMessage, len(syncColumns)),
		// The shape of the sinks' version (history|source|binlog base|file:pos:row).
		Version: fmt.Sprintf("bench0000000|127.0.0.1:3306|mysql-bin|%020d:%010d:%010d", 1, i/1000, i%1000)}
	for j, col := range syncColumns {
		v, ok := m[col]
		if !ok {
			return syncRow{}, fmt.Errorf("sync table row image %s: no column %q", img, col)
		}
		r.Values[j] = v
	}
	if err := json.Unmarshal(r.Values[0], &r.ID); err != nil {
		return syncRow{}, fmt.Errorf("sync table row image %s: id: %w", img, err)
	}
	return r, nil
}

// redisKey is the sink's key of a row of the sync table (its default
// pattern "{db}:{table}:{pk}").
func redisKey(id int64) string { return benchDB + ":" + syncTable + ":" + strconv.FormatInt(id, 10) }

// measureRedisCeiling writes rows into Redis without dbsync: one HSET per
// row (its columns in the sink's JSON form and a version field), in
// pipelines of syncCeilingBatch, one after the other on one connection.
// The clock runs from the first pipeline until the last one's replies
// arrived. It fails when Redis then holds a different number of row keys.
func measureRedisCeiling(ctx context.Context, c *redis.Client, rows []syncRow) (time.Duration, error) {
	args := make([][]any, len(rows))
	for i, r := range rows {
		a := make([]any, 0, 2*len(syncColumns)+2)
		for j, col := range syncColumns {
			a = append(a, col, []byte(r.Values[j]))
		}
		args[i] = append(a, syncVersionField, r.Version)
	}
	began := time.Now()
	for i := 0; i < len(rows); i += syncCeilingBatch {
		pipe := c.Pipeline()
		for j := i; j < min(i+syncCeilingBatch, len(rows)); j++ {
			pipe.HSet(ctx, redisKey(rows[j].ID), args[j]...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("redis ceiling: pipeline of rows %d..: %w", i, err)
		}
	}
	elapsed := time.Since(began)
	if n, err := countRedisRows(ctx, c); err != nil || n != len(rows) {
		return 0, fmt.Errorf("redis ceiling: Redis holds %d row keys, want %d (%v)", n, len(rows), err)
	}
	return elapsed, nil
}

// countRedisRows counts the keys of the sync table's rows (SCAN).
func countRedisRows(ctx context.Context, c *redis.Client) (int, error) {
	n := 0
	iter := c.Scan(ctx, 0, benchDB+":"+syncTable+":*", 10_000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// pgCeilingDDL creates the table of the PostgreSQL ceiling: the columns
// pgsink gives the sync's target table (the shape of tableColumns, and
// its version column).
const pgCeilingDDL = `CREATE SCHEMA ` + benchDB + `;
CREATE TABLE ` + benchDB + `.` + syncTable + ` (id integer NOT NULL, name text, qty integer, price numeric(10,2), at timestamp(6),
	` + syncVersionField + ` text, PRIMARY KEY (id))`

// pgValue is a JSON value as a pgx argument: a number as int64 (the
// table's numbers are integers), a string's content (text format, which
// PostgreSQL parses into numeric or timestamp), null as nil.
func pgValue(v json.RawMessage) (any, error) {
	switch {
	case string(v) == "null":
		return nil, nil
	case len(v) > 0 && v[0] == '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	}
	return strconv.ParseInt(string(v), 10, 64)
}

// upsertSQL is the multi-row upsert of n rows into the ceiling's table.
func upsertSQL(n int) string {
	cols := append(append([]string(nil), syncColumns...), syncVersionField)
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s.%s (%s) VALUES ", benchDB, syncTable, strings.Join(cols, ", "))
	p := 1
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range cols {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", p)
			p++
		}
		b.WriteByte(')')
	}
	b.WriteString(" ON CONFLICT (id) DO UPDATE SET ")
	for j, c := range cols[1:] {
		if j > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s = EXCLUDED.%s", c, c)
	}
	return b.String()
}

// measurePostgresCeiling writes rows into PostgreSQL without dbsync:
// multi-row INSERT ... ON CONFLICT DO UPDATE statements of
// syncCeilingBatch rows, each in a transaction of its own, one after the
// other on one connection, into a fresh table of the sync target's
// columns. The clock runs from the first BEGIN until the last COMMIT
// returned. It fails when the table then holds a different number of
// rows.
func measurePostgresCeiling(ctx context.Context, conn *pgx.Conn, rows []syncRow) (time.Duration, error) {
	if _, err := conn.Exec(ctx, pgCeilingDDL); err != nil {
		return 0, fmt.Errorf("postgres ceiling: create its table: %w", err)
	}
	args := make([]any, 0, len(rows)*(len(syncColumns)+1))
	for _, r := range rows {
		for _, v := range r.Values {
			a, err := pgValue(v)
			if err != nil {
				return 0, fmt.Errorf("postgres ceiling: value %s: %w", v, err)
			}
			args = append(args, a)
		}
		args = append(args, r.Version)
	}
	perRow := len(syncColumns) + 1
	full := upsertSQL(syncCeilingBatch)
	began := time.Now()
	for i := 0; i < len(rows); i += syncCeilingBatch {
		n := min(syncCeilingBatch, len(rows)-i)
		q := full
		if n < syncCeilingBatch {
			q = upsertSQL(n)
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, q, args[i*perRow:(i+n)*perRow]...)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("postgres ceiling: upsert rows %d..%d: %w", i, i+n-1, err)
		}
	}
	elapsed := time.Since(began)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+benchDB+"."+syncTable).Scan(&n); err != nil || n != len(rows) {
		return 0, fmt.Errorf("postgres ceiling: the table holds %d rows, want %d (%v)", n, len(rows), err)
	}
	return elapsed, nil
}

// syncTarget is how runSync watches one target: last reports whether the
// row written last (the highest key; the sync writes a table's changes in
// order) is there, count how many rows the target holds.
type syncTarget struct {
	name   string
	config map[string]any // the sync configuration's target section
	last   func(ctx context.Context) (bool, error)
	count  func(ctx context.Context) (int, error)
}

// runSync runs the sync command on the broker's backlog of the sync
// table into target, with a fresh ClientID (its consumer starts at the
// stream's first message) and default settings otherwise. The clock runs
// from the process start until the target holds every row: polled every
// pollInterval for the last row, then confirmed by a count (polled until
// it is complete, should the last row have come early). The sync must
// then stop with status 0 on SIGTERM.
func runSync(ctx context.Context, tb *benchTB, bin string, db *testenv.MariaDB, br *broker, t syncTarget, rows int) (syncTargetResult, error) {
	fail := func(err error) (syncTargetResult, error) {
		return syncTargetResult{}, fmt.Errorf("sync into %s: %w", t.name, err)
	}
	cfg := map[string]any{
		"Tables": []string{benchDB + "." + syncTable},
		"Target": t.name,
		"Source": map[string]any{"Host": db.Host, "Port": db.Port, "User": db.User, "Password": db.Password},
		"Broker": map[string]any{"Broker": "jetstream", "URL": br.URL(), "Stream": jsStream, "Prefix": jsPrefix,
			"ClientID": "bench-sync-" + t.name},
		"HTTP": map[string]any{"Listen": "127.0.0.1:" + strconv.Itoa(testenv.FreePort(tb))},
		"Log":  map[string]any{"Level": "info"},
	}
	switch t.name {
	case syncTargetRedis:
		cfg["Redis"] = t.config
	case syncTargetPostgres:
		cfg["Postgres"] = t.config
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fail(err)
	}
	path := filepath.Join(tb.TempDir(), "sync.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fail(err)
	}

	out := &testenv.Buffer{}
	cmd := exec.Command(bin, "-config", path)
	cmd.Stdout, cmd.Stderr = out, out
	began := time.Now()
	child, err := testenv.StartChild(cmd)
	if err != nil {
		return fail(fmt.Errorf("start the sync: %w", err))
	}
	tb.Cleanup(child.Kill)
	res := syncTargetResult{Target: t.name, Rows: rows, PeakRSS: -1}
	deadline := began.Add(10 * time.Minute)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	lastSeen, got := false, 0
	for {
		if res.Startup == 0 && strings.Contains(out.String(), syncStartedLog) {
			res.Startup = time.Since(began)
		}
		if !lastSeen {
			if lastSeen, err = t.last(ctx); err != nil {
				return fail(err)
			}
		}
		if lastSeen {
			at := time.Now()
			if got, err = t.count(ctx); err != nil {
				return fail(err)
			}
			if got > rows {
				return fail(fmt.Errorf("the target holds %d rows, more than the table's %d", got, rows))
			}
			if got == rows {
				res.Sync = at.Sub(began)
				break
			}
		}
		if child.Exited() {
			return fail(fmt.Errorf("the sync exited early (%s); its log ends with:\n%s", child.ExitStatus(), tail(out.String(), 30)))
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("the target holds %d of %d rows (last row seen: %t) after %s; the sync's log ends with:\n%s",
				got, rows, lastSeen, time.Since(began).Round(time.Second), tail(out.String(), 30)))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	if res.PeakRSS, err = child.PeakRSS(); err != nil {
		return fail(err)
	}
	if err := child.Stop(syscall.SIGTERM, syncStopTimeout); err != nil {
		return fail(fmt.Errorf("%w; its log ends with:\n%s", err, tail(out.String(), 30)))
	}
	if err := child.Err(); err != nil {
		return fail(fmt.Errorf("the sync stopped with %v; its log ends with:\n%s", err, tail(out.String(), 30)))
	}
	return res, nil
}

// publishSyncTable runs the producer on a first start with Snapshot.Mode
// initial and Tables.Include bench.synced into br until the broker holds
// every row, then stops it.
func publishSyncTable(ctx context.Context, tb *benchTB, bin string, db *testenv.MariaDB, br *broker, rows int) (time.Duration, error) {
	table := benchDB + "." + syncTable
	setup, err := newProducerSetup(tb, bin, db, br, []string{table}, false)
	if err != nil {
		return 0, err
	}
	if err := setup.addConfig("Snapshot", map[string]any{"Mode": "initial", "ChunkRows": snapshotChunkRows}); err != nil {
		return 0, err
	}
	p, err := setup.start(tb)
	if err != nil {
		return 0, err
	}
	prog, err := waitCount(ctx, br, p, br.subject(table), rows, 10*time.Minute)
	if err != nil {
		return 0, err
	}
	if err := p.stop(); err != nil {
		return 0, err
	}
	if n, err := br.count(ctx, br.subject(table)); err != nil || n != rows {
		return 0, fmt.Errorf("the broker holds %d messages of %s, want %d (%v)", n, table, rows, err)
	}
	return prog.Reached.Sub(p.started), nil
}

// measureSync measures the sync command once per target on the sync
// table: the producer publishes the table to a JetStream server of its
// own (a snapshot) and stops; then per target (Redis, then PostgreSQL,
// each a fresh server) the target's ceiling on the same rows without
// dbsync, and the sync consuming the whole backlog into an empty target.
func (b *bench) measureSync(ctx context.Context) error {
	tb := b.tb.scope("sync")
	defer tb.close()
	rows := b.opts.SyncRows
	fail := func(err error) error { return fmt.Errorf("sync: %w", err) }
	data, err := readSyncRows(ctx, b.db, rows)
	if err != nil {
		return fail(err)
	}
	br, err := startBroker(tb, BrokerJetStream)
	if err != nil {
		return fail(err)
	}
	res := &syncResult{Rows: rows}
	if res.Publish, err = publishSyncTable(ctx, tb, b.bin, b.db, br, rows); err != nil {
		return fail(err)
	}
	b.progress("sync: the producer published the %s-row table to jetstream in %s", fmtCount(float64(rows)), res.Publish.Round(time.Millisecond))

	// Redis: the ceiling, an empty server again, the sync.
	rds := testenv.StartRedis(tb)
	rc := rds.Client(tb)
	ceiling, err := measureRedisCeiling(ctx, rc, data)
	if err != nil {
		return fail(err)
	}
	if err := rc.FlushAll(ctx).Err(); err != nil {
		return fail(fmt.Errorf("redis FLUSHALL: %w", err))
	}
	r, err := runSync(ctx, tb, b.syncBin, b.db, br, syncTarget{
		name:   syncTargetRedis,
		config: map[string]any{"Addr": rds.Addr()},
		last: func(ctx context.Context) (bool, error) {
			n, err := rc.Exists(ctx, redisKey(data[len(data)-1].ID)).Result()
			return n == 1, err
		},
		count: func(ctx context.Context) (int, error) { return countRedisRows(ctx, rc) },
	}, rows)
	if err != nil {
		return fail(err)
	}
	r.Ceiling = ceiling
	res.Targets = append(res.Targets, r)
	b.progressSync(r)

	// PostgreSQL: the ceiling in one database, the sync into another.
	pg := testenv.StartPostgres(tb)
	pg.CreateDB(tb, "ceiling")
	pg.CreateDB(tb, "mirror")
	if ceiling, err = measurePostgresCeiling(ctx, pg.Conn(tb, "ceiling"), data); err != nil {
		return fail(err)
	}
	mirror := pg.Conn(tb, "mirror")
	table := benchDB + "." + syncTable
	r, err = runSync(ctx, tb, b.syncBin, b.db, br, syncTarget{
		name:   syncTargetPostgres,
		config: map[string]any{"DSN": pg.DSN("mirror")},
		last: func(ctx context.Context) (bool, error) {
			var ok bool
			err := mirror.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" WHERE id = $1)", data[len(data)-1].ID).Scan(&ok)
			var pe *pgconn.PgError
			if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") {
				return false, nil // the sync has not created the table yet
			}
			return ok, err
		},
		count: func(ctx context.Context) (int, error) {
			var n int
			err := mirror.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
			return n, err
		},
	}, rows)
	if err != nil {
		return fail(err)
	}
	r.Ceiling = ceiling
	res.Targets = append(res.Targets, r)
	b.progressSync(r)
	b.res.Sync = res
	return nil
}

// progressSync prints one target's sync measurement.
func (b *bench) progressSync(r syncTargetResult) {
	b.progress("sync: %-8s ceiling %s rows/s, sync %s rows/s (%s rows in %s, startup %s, peak RSS %.1f MiB): %s of the ceiling",
		r.Target, fmtCount(r.CeilingRowsPerSec()), fmtCount(r.SyncRowsPerSec()), fmtCount(float64(r.Rows)),
		r.Sync.Round(time.Millisecond), r.Startup.Round(time.Millisecond), mib(r.PeakRSS), fmtPercent(r.Fraction()))
}
