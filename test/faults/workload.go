package faults

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dbsync/dbsync/test/testenv"
)

// WorkloadOptions shapes a Workload; the zero value is the default.
type WorkloadOptions struct {
	// DB is the database the tables live in; "" means "fx".
	DB string
	// Tables is how many tables (DB.t0, DB.t1, …), one writer each; 0 means 2.
	Tables int
	// MaxRows bounds the rows of one transaction (1..MaxRows, uniformly);
	// 0 means 20.
	MaxRows int
	// Interval is each writer's pause between transactions; 0 means 20ms.
	Interval time.Duration
}

func (o WorkloadOptions) withDefaults() WorkloadOptions {
	if o.DB == "" {
		o.DB = "fx"
	}
	if o.Tables <= 0 {
		o.Tables = 2
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 20
	}
	if o.Interval <= 0 {
		o.Interval = 20 * time.Millisecond
	}
	return o
}

// TableNames returns "db.t0" … for the options.
func (o WorkloadOptions) TableNames() []string {
	o = o.withDefaults()
	out := make([]string, o.Tables)
	for i := range out {
		out[i] = fmt.Sprintf("%s.t%d", o.DB, i)
	}
	return out
}

// WorkloadTableDDL is the column set of every workload table: one column of
// each contract type the suite checks. Ids are assigned by the table's only
// writer in increasing order, so id order is commit order.
const WorkloadTableDDL = `(
	id BIGINT PRIMARY KEY,
	name VARCHAR(64) NOT NULL,
	qty INT NOT NULL,
	price DECIMAL(10,2) NOT NULL,
	at DATETIME(6) NOT NULL,
	flag TINYINT(1) NOT NULL,
	doc JSON NOT NULL,
	note VARCHAR(32) NULL,
	u BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`

// CreateWorkloadTables creates the database and tables of opts (IF NOT
// EXISTS). Create them before the producer's first start, which begins at
// the server's current position, so that every row written later is owed.
func CreateWorkloadTables(t testing.TB, m *testenv.MariaDB, opts WorkloadOptions) {
	t.Helper()
	opts = opts.withDefaults()
	stmts := []string{"CREATE DATABASE IF NOT EXISTS " + opts.DB}
	for _, tbl := range opts.TableNames() {
		stmts = append(stmts, "CREATE TABLE IF NOT EXISTS "+tbl+" "+WorkloadTableDDL)
	}
	m.Exec(t, stmts...)
}

// Workload inserts rows into its tables from one writer goroutine per table:
// transactions of 1..MaxRows rows (sometimes one multi-row INSERT, sometimes
// one INSERT per row), a pause of Interval between them, ids 1, 2, 3, … per
// table. It keeps writing through MariaDB faults: a failed transaction is
// retried with new ids after a short pause (an id is never reused), so id
// order stays commit order.
//
// It records, per table, the ids whose COMMIT returned nil (Acked) and
// those whose COMMIT failed (Uncertain: the server may or may not have
// committed them). Reconcile turns both into what MariaDB actually holds.
type Workload struct {
	Opts   WorkloadOptions
	Tables []string

	t    testing.TB
	m    *testenv.MariaDB
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu        sync.Mutex
	acked     map[string][]int64
	uncertain map[string][]int64
	failures  int
	lastErr   error
}

// StartWorkload creates the tables (see CreateWorkloadTables) and starts
// the writers against m (directly, never through a proxy). Stop them with
// Stop; they are stopped at test cleanup too.
func StartWorkload(t testing.TB, m *testenv.MariaDB, opts WorkloadOptions) *Workload {
	t.Helper()
	opts = opts.withDefaults()
	CreateWorkloadTables(t, m, opts)
	w := &Workload{Opts: opts, Tables: opts.TableNames(), t: t, m: m, stop: make(chan struct{}),
		acked: map[string][]int64{}, uncertain: map[string][]int64{}}
	for _, tbl := range w.Tables {
		db := writerDB(t, m)
		w.wg.Add(1)
		go w.writer(db, tbl)
	}
	t.Cleanup(w.Stop)
	return w
}

// writerDB opens a one-connection pool for a writer, with timeouts so that
// a stopped or frozen server fails statements instead of hanging them.
func writerDB(t testing.TB, m *testenv.MariaDB) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(m.DSN(""))
	if err != nil {
		t.Fatalf("faults: parse DSN of %s: %v", m.Addr(), err)
	}
	cfg.Timeout = 2 * time.Second
	cfg.ReadTimeout = 10 * time.Second
	cfg.WriteTimeout = 10 * time.Second
	cfg.InterpolateParams = true
	cfg.ParseTime = false
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("faults: open %s: %v", m.Addr(), err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// RowValues returns the values the workload writes for id, in column order
// of WorkloadTableDDL (note is nil for every third id).
func RowValues(id int64) []any {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := base.Add(time.Duration(id)*time.Second + time.Duration(id*37%1_000_000)*time.Microsecond)
	price := fmt.Sprintf("%d.%02d", id%100000, id%100)
	if id%5 == 0 {
		price = "-" + price
	}
	var note any
	if id%3 != 0 {
		note = fmt.Sprintf("n%d", id)
	}
	doc := fmt.Sprintf(`{"id":%d,"tags":["a","b\"q"],"n":{"x":1.5,"big":12345678901234,"neg":-%d},"ok":%t,"nil":null}`, id, id%1000, id%2 == 0)
	return []any{
		id,
		fmt.Sprintf("row %d é€ 'q'", id),
		int32(id*7919%2_000_001 - 1_000_000),
		price,
		at.Format("2006-01-02 15:04:05.000000"),
		id % 2,
		doc,
		note,
		uint64(18446744073709551615) - uint64(id),
	}
}

const rowPlaceholders = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"

func (w *Workload) writer(db *sql.DB, table string) {
	defer w.wg.Done()
	next := int64(1)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n := 1 + rand.IntN(w.Opts.MaxRows)
		ids := make([]int64, n)
		for k := range ids {
			ids[k] = next + int64(k)
		}
		next += int64(n)
		atCommit, err := w.insert(db, table, ids)
		w.mu.Lock()
		switch {
		case err == nil:
			w.acked[table] = append(w.acked[table], ids...)
		case atCommit:
			w.uncertain[table] = append(w.uncertain[table], ids...)
		}
		if err != nil {
			w.failures++
			w.lastErr = err
		}
		w.mu.Unlock()
		pause := w.Opts.Interval
		if err != nil {
			pause = 100 * time.Millisecond
		}
		select {
		case <-w.stop:
			return
		case <-time.After(pause):
		}
	}
}

// insert writes ids in one transaction; atCommit says the error (if any)
// came from COMMIT, whose outcome is then unknown.
func (w *Workload) insert(db *sql.DB, table string, ids []int64) (atCommit bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	if len(ids) > 1 && rand.IntN(2) == 0 {
		var args []any
		for _, id := range ids {
			args = append(args, RowValues(id)...)
		}
		q := "INSERT INTO " + table + " VALUES " + strings.TrimSuffix(strings.Repeat(rowPlaceholders+",", len(ids)), ",")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			_ = tx.Rollback()
			return false, err
		}
	} else {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES "+rowPlaceholders, RowValues(id)...); err != nil {
				_ = tx.Rollback()
				return false, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return true, err
	}
	return false, nil
}

// Stop stops the writers and waits for them; calling it again does
// nothing.
func (w *Workload) Stop() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// Acked returns, per table, the ids whose COMMIT returned nil, in commit
// order.
func (w *Workload) Acked() map[string][]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]int64{}
	for k, v := range w.acked {
		out[k] = slices.Clone(v)
	}
	return out
}

// AckedTotal is the number of rows whose COMMIT returned nil so far.
func (w *Workload) AckedTotal() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.acked {
		n += len(v)
	}
	return n
}

// Failures returns how many transactions failed so far and the last error.
func (w *Workload) Failures() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failures, w.lastErr
}

// WaitAcked waits until at least n more rows than now were acknowledged,
// failing the test after timeout (the load is not flowing).
func (w *Workload) WaitAcked(n int, timeout time.Duration) {
	w.t.Helper()
	target := w.AckedTotal() + n
	deadline := time.Now().Add(timeout)
	for w.AckedTotal() < target {
		if time.Now().After(deadline) {
			f, err := w.Failures()
			w.t.Fatalf("faults: workload committed %d rows, want %d within %s (%d failed transactions, last: %v)",
				w.AckedTotal(), target, timeout, f, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reconcile stops the writers and returns, per table, the ids MariaDB
// actually holds, in id (= commit) order: acknowledged commits plus the
// uncertain ones the server did commit. It records a problem (returned as
// notes) when an acknowledged id is missing or an id appears that the
// workload never wrote; it fails the test when MariaDB cannot be queried.
func (w *Workload) Reconcile() (committed map[string][]int64, notes []string) {
	w.t.Helper()
	w.Stop()
	committed = map[string][]int64{}
	db := w.m.DB(w.t)
	for _, tbl := range w.Tables {
		ids := SelectIDs(w.t, db, tbl)
		committed[tbl] = ids
		have := map[int64]bool{}
		for _, id := range ids {
			have[id] = true
		}
		w.mu.Lock()
		acked, uncertain := w.acked[tbl], w.uncertain[tbl]
		w.mu.Unlock()
		wrote := map[int64]bool{}
		missing := 0
		for _, id := range acked {
			wrote[id] = true
			if !have[id] {
				missing++
			}
		}
		for _, id := range uncertain {
			wrote[id] = true
		}
		if missing > 0 {
			notes = append(notes, fmt.Sprintf("%s: MariaDB lacks %d rows whose COMMIT succeeded", tbl, missing))
		}
		for _, id := range ids {
			if !wrote[id] {
				notes = append(notes, fmt.Sprintf("%s: MariaDB holds id %d the workload never committed", tbl, id))
				break
			}
		}
	}
	return committed, notes
}

// SelectIDs returns the ids of table ("db.table") in id order.
func SelectIDs(t testing.TB, db *sql.DB, table string) []int64 {
	t.Helper()
	rows, err := db.Query("SELECT id FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatalf("faults: select ids of %s: %v", table, err)
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatalf("faults: scan id of %s: %v", table, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("faults: select ids of %s: %v", table, err)
	}
	return ids
}
