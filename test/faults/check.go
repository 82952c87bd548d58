package faults

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// Result is the outcome of one scenario: what MariaDB committed against what
// the broker holds. Committed counts rows MariaDB holds; Delivered the
// committed rows the broker holds at least once; Duplicates the messages
// beyond each row's first delivery (in-order replays); Lost the committed
// rows the broker lacks. OK is true when nothing is lost and every check
// passed; Note says what failed (empty when OK).
type Result struct {
	Scenario   string
	Committed  int
	Delivered  int
	Duplicates int
	Lost       int
	// Consumer is what an SDK consumer handed over, when the scenario ran
	// one (Cluster.StartConsumer).
	Consumer *ConsumerResult
	OK       bool
	Note     string
}

// Summary is the scenario's one summary line:
// "scenario=<name> committed=N delivered=N duplicates=N lost=N result=PASS|FAIL",
// with "handed_over=N handed_twice=N handed_lost=N" before result when an
// SDK consumer ran.
func (r Result) Summary() string {
	res := "PASS"
	if !r.OK {
		res = "FAIL"
	}
	consumer := ""
	if k := r.Consumer; k != nil {
		consumer = fmt.Sprintf(" handed_over=%d handed_twice=%d handed_lost=%d", k.HandedOver, k.Duplicates, k.Lost)
	}
	return fmt.Sprintf("scenario=%s committed=%d delivered=%d duplicates=%d lost=%d%s result=%s",
		r.Scenario, r.Committed, r.Delivered, r.Duplicates, r.Lost, consumer, res)
}

// CheckOptions adjusts CheckWith. The zero value is Check's behaviour.
type CheckOptions struct {
	// Committed gives the committed ids per table ("db.table") in commit
	// order instead of SELECT id … ORDER BY id (for tables whose ids are not
	// assigned in commit order).
	Committed map[string][]int64
	// CompareRow, when set, replaces the value check of one delivered row:
	// want is the row as SELECTed now, in the contract's JSON form; got the
	// envelope's after image. It returns nil when they agree. Schema-change
	// scenarios use it for rows written before an ALTER.
	CompareRow func(table string, id int64, want, got map[string]json.RawMessage) error
	// Notes are problems found before the check (e.g. by
	// Workload.Reconcile); any makes the result FAIL.
	Notes []string
	// Prefix accepts a broker that holds, per table, a prefix of the
	// committed rows (the producer stopped on purpose): rows after the
	// last delivered one are not lost, a row missing before it is.
	Prefix bool
	// NotAfter, when set, is a change nothing after which may be
	// delivered, on any table (the producer stopped before it).
	NotAfter *envelope.Source
	// ExtraTables are checked along with the workload's (Cluster.Finish).
	ExtraTables []string
}

// maxProblems is how many problems a Result's note lists.
const maxProblems = 6

// Check compares what MariaDB committed in tables ("db.table", each with a
// BIGINT primary key `id` assigned in commit order and only inserted, as the
// Workload does) with what c.Broker holds on their subjects:
//
//   - no loss: every committed id is delivered;
//   - first deliveries (by the envelope's (file, pos, row) coordinate) come
//     in increasing binlog order and their ids in commit order, with no id
//     MariaDB does not hold;
//   - a message seen before is a duplicate, allowed only as part of an
//     in-order replay: byte-identical to its first delivery, each replay
//     continuing with the next first delivery until it has caught up
//     (a replay may restart from an earlier point, as a second crash in the
//     middle of a replay does), and no new row before it has caught up;
//   - every delivered value equals the row as SELECTed now, in the JSON form
//     docs/envelope.md specifies for its column type (JSON documents compared
//     after normalisation, numbers by value).
//
// It does not fail the test by itself: the Result says what is wrong;
// Cluster.Finish reports it. It fails the test (t.Fatalf) only when MariaDB
// or the broker cannot be read.
func Check(t testing.TB, c *Cluster, tables []string) Result {
	t.Helper()
	return CheckWith(t, c, tables, CheckOptions{})
}

// CheckWith is Check with options.
func CheckWith(t testing.TB, c *Cluster, tables []string, opts CheckOptions) Result {
	t.Helper()
	r := Result{Scenario: c.Name}
	problems := append([]string(nil), opts.Notes...)
	db := c.DB.DB(t)
	for _, table := range tables {
		want := selectRows(t, db, table)
		committed := opts.Committed[table]
		if committed == nil {
			committed = want.ids
		}
		raw := c.Broker.RawMessages(table)
		tr := checkTable(table, committed, want, raw, opts)
		r.Committed += len(committed)
		r.Delivered += tr.delivered
		r.Duplicates += tr.duplicates
		r.Lost += tr.lost
		problems = append(problems, tr.problems...)
	}
	if r.Lost > 0 {
		problems = append([]string{fmt.Sprintf("%d committed rows lost", r.Lost)}, problems...)
	}
	r.OK = len(problems) == 0
	if len(problems) > maxProblems {
		problems = append(problems[:maxProblems], fmt.Sprintf("… and %d more problems", len(problems)-maxProblems))
	}
	r.Note = strings.Join(problems, "; ")
	return r
}

// tableResult is checkTable's verdict for one table.
type tableResult struct {
	delivered, duplicates, lost int
	problems                    []string
}

// coord orders row changes: binlog file number, event position, row index.
type coord struct {
	file     int64
	pos, row int64
}

func (a coord) less(b coord) bool {
	if a.file != b.file {
		return a.file < b.file
	}
	if a.pos != b.pos {
		return a.pos < b.pos
	}
	return a.row < b.row
}

// coordOf parses the envelope's coordinate; the file's numeric suffix
// orders files.
func coordOf(e *envelope.Envelope) (coord, error) {
	i := strings.LastIndexByte(e.Source.File, '.')
	n, err := strconv.ParseInt(e.Source.File[i+1:], 10, 64)
	if err != nil {
		return coord{}, fmt.Errorf("binlog file %q has no numeric suffix", e.Source.File)
	}
	return coord{file: n, pos: int64(e.Source.Pos), row: int64(e.Source.Row)}, nil
}

// checkTable checks one subject's messages (raw, in store order) against
// the committed ids and the rows as SELECTed.
func checkTable(table string, committed []int64, want *tableRows, raw [][]byte, opts CheckOptions) tableResult {
	compare := opts.CompareRow
	var tr tableResult
	problem := func(format string, args ...any) {
		tr.problems = append(tr.problems, table+": "+fmt.Sprintf(format, args...))
	}
	db, tbl, _ := strings.Cut(table, ".")

	type first struct {
		c   coord
		raw []byte
		id  int64
	}
	var distinct []first
	index := map[coord]int{}
	replayNext := -1 // index in distinct the replay in progress must show next
	for i, data := range raw {
		e, err := envelope.Decode(data)
		if err != nil {
			problem("message %d: %v", i, err)
			continue
		}
		c, err := coordOf(e)
		if err != nil {
			problem("message %d (%s): %v", i, e.ID, err)
			continue
		}
		if j, seen := index[c]; seen {
			tr.duplicates++
			if replayNext >= 0 && j > replayNext {
				problem("message %d (%s) skips ahead in a replay: expected %s next", i, e.ID, envID(distinct[replayNext].c))
			}
			if !bytes.Equal(withoutPrev(data), withoutPrev(distinct[j].raw)) {
				problem("message %d (%s) replays its first delivery with different content", i, e.ID)
			}
			replayNext = j + 1
			if replayNext == len(distinct) {
				replayNext = -1
			}
			continue
		}
		if replayNext >= 0 {
			problem("message %d (%s) is new while a replay had not caught up (expected %s next): a gap in the replay", i, e.ID, envID(distinct[replayNext].c))
			replayNext = -1
		}
		if n := len(distinct); n > 0 && !distinct[n-1].c.less(c) {
			problem("message %d (%s) is out of binlog order after %s", i, e.ID, envID(distinct[n-1].c))
		}
		if na := opts.NotAfter; na != nil {
			if limit, err := coordOf(&envelope.Envelope{Source: *na}); err == nil && limit.less(c) {
				problem("message %d (%s) comes after %s, which stopped the producer: something behind it was published", i, e.ID, na.File)
			}
		}
		if e.DB != db || e.Table != tbl || e.Type != envelope.TypeInsert {
			problem("message %d (%s) is %s %s.%s, want insert %s", i, e.ID, e.Type, e.DB, e.Table, table)
		}
		var id int64
		if err := json.Unmarshal(e.After["id"], &id); err != nil {
			problem("message %d (%s): after.id = %s: %v", i, e.ID, e.After["id"], err)
			continue
		}
		index[c] = len(distinct)
		distinct = append(distinct, first{c: c, raw: data, id: id})

		row, ok := want.byID[id]
		if !ok {
			continue // not committed: reported below
		}
		if compare != nil {
			if err := compare(table, id, row, e.After); err != nil {
				problem("id %d: %v", id, err)
			}
		} else if err := equalRow(row, e.After); err != nil {
			problem("id %d: %v", id, err)
		}
	}

	// First deliveries against the commit order.
	isCommitted := make(map[int64]bool, len(committed))
	for _, id := range committed {
		isCommitted[id] = true
	}
	delivered := make(map[int64]bool, len(distinct))
	var order []int64 // committed ids in first-delivery order
	for _, f := range distinct {
		if delivered[f.id] {
			problem("id %d delivered twice under different coordinates", f.id)
			continue
		}
		delivered[f.id] = true
		if !isCommitted[f.id] {
			problem("id %d delivered but MariaDB does not hold it", f.id)
			continue
		}
		order = append(order, f.id)
	}
	tr.delivered = len(order)
	var lostIDs []int64
	var expect []int64 // committed ids that were delivered, in commit order
	last := -1         // index in committed of the last delivered id
	for i, id := range committed {
		if delivered[id] {
			last = i
		}
	}
	for i, id := range committed {
		if delivered[id] {
			expect = append(expect, id)
		} else if !opts.Prefix || i < last {
			lostIDs = append(lostIDs, id)
		}
	}
	tr.lost = len(lostIDs)
	if len(lostIDs) > 0 {
		problem("%d committed rows not delivered (first: %v)", len(lostIDs), lostIDs[:min(5, len(lostIDs))])
	}
	for i := range expect {
		if order[i] != expect[i] {
			problem("first delivery %d is id %d, commit order says %d (reordered)", i, order[i], expect[i])
			break
		}
	}
	return tr
}

// runFields matches an envelope's "prev" and "source.history" keys and
// values.
var runFields = regexp.MustCompile(`"prev":"[^"]*",|,"history":"[^"]*"`)

// withoutPrev is an envelope without "prev" and "source.history", the
// fields a replay may change: prev names the previous change of the table
// in the same producer run, and a replay starts a new run; a checkpoint
// lost and set again by hand takes a new history id (NATS Streaming keeps
// no newest message to take the old one from).
func withoutPrev(data []byte) []byte { return runFields.ReplaceAll(data, nil) }

func envID(c coord) string { return fmt.Sprintf("file %d pos %d row %d", c.file, c.pos, c.row) }

// tableRows is a table as SELECTed now, each row in the contract's JSON form.
type tableRows struct {
	ids  []int64
	byID map[int64]map[string]json.RawMessage
}

// column is one column's information_schema description.
type column struct {
	name, dataType, columnType string
	json                       bool
}

// selectRows reads every row of table in id order and renders each value
// as docs/envelope.md says the producer must.
func selectRows(t testing.TB, db *sql.DB, table string) *tableRows {
	t.Helper()
	schema, name, ok := strings.Cut(table, ".")
	if !ok {
		t.Fatalf("faults: table %q: want db.table", table)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("faults: connect to read %s: %v", table, err)
	}
	defer conn.Close()
	// TIMESTAMP columns are rendered as UTC instants.
	if _, err := conn.ExecContext(ctx, "SET time_zone = '+00:00'"); err != nil {
		t.Fatalf("faults: set time_zone: %v", err)
	}
	cols := columnsOf(ctx, t, conn, schema, name)
	// A query without arguments uses the text protocol: every value arrives
	// as the server's text, which keeps DECIMAL digits and fractional
	// seconds exact.
	rows, err := conn.QueryContext(ctx, "SELECT * FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatalf("faults: select %s: %v", table, err)
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(cols) {
		t.Fatalf("faults: %s: SELECT * has %d columns, information_schema %d", table, len(names), len(cols))
	}
	out := &tableRows{byID: map[int64]map[string]json.RawMessage{}}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("faults: scan %s: %v", table, err)
		}
		row := make(map[string]json.RawMessage, len(cols))
		for i, col := range cols {
			v, err := contractJSON(col, vals[i])
			if err != nil {
				t.Fatalf("faults: %s.%s: %v", table, col.name, err)
			}
			row[col.name] = v
		}
		var id int64
		if err := json.Unmarshal(row["id"], &id); err != nil {
			t.Fatalf("faults: %s: id %s is not a BIGINT: %v", table, row["id"], err)
		}
		out.ids = append(out.ids, id)
		out.byID[id] = row
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("faults: select %s: %v", table, err)
	}
	return out
}

// columnsOf lists the table's columns in order, marking MariaDB's JSON
// columns (LONGTEXT with a json_valid check).
func columnsOf(ctx context.Context, t testing.TB, conn *sql.Conn, schema, table string) []column {
	t.Helper()
	rows, err := conn.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		t.Fatalf("faults: columns of %s.%s: %v", schema, table, err)
	}
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.dataType, &c.columnType); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if len(cols) == 0 {
		t.Fatalf("faults: table %s.%s not found", schema, table)
	}
	// MariaDB's JSON is a LONGTEXT with a json_valid check; a server
	// without CHECK_CONSTRAINTS has none.
	if checks, err := conn.QueryContext(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, schema, table); err == nil {
		for checks.Next() {
			var clause string
			if err := checks.Scan(&clause); err != nil {
				t.Fatal(err)
			}
			for i := range cols {
				if strings.Contains(clause, "json_valid(`"+cols[i].name+"`)") {
					cols[i].json = true
				}
			}
		}
		checks.Close()
	}
	for i := range cols {
		if cols[i].dataType == "json" {
			cols[i].json = true
		}
	}
	return cols
}

// contractJSON renders one value from the text protocol as the envelope
// contract's JSON (docs/envelope.md).
func contractJSON(col column, v sql.RawBytes) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage("null"), nil
	}
	s := string(v)
	str := func(s string) (json.RawMessage, error) { b, err := json.Marshal(s); return b, err }
	switch col.dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "year", "float", "double":
		return json.RawMessage(s), nil
	case "decimal":
		return str(s)
	case "datetime":
		return str(strings.Replace(s, " ", "T", 1))
	case "timestamp":
		if strings.HasPrefix(s, "0000-00-00") {
			return str(s)
		}
		return str(strings.Replace(s, " ", "T", 1) + "Z")
	case "date", "time", "enum":
		return str(s)
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		if col.json {
			if !json.Valid(v) {
				return nil, fmt.Errorf("JSON column holds invalid JSON %q", s)
			}
			return json.RawMessage(append([]byte(nil), v...)), nil
		}
		return str(s)
	case "json":
		return json.RawMessage(append([]byte(nil), v...)), nil
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return str(base64.StdEncoding.EncodeToString(v))
	case "set":
		members := []string{}
		if s != "" {
			members = strings.Split(s, ",")
		}
		b, err := json.Marshal(members)
		return b, err
	}
	return nil, fmt.Errorf("type %s is not supported by the checker (add it to contractJSON)", col.columnType)
}

// equalRow compares the expected row with an after image: the same
// columns, each value equal as JSON (numbers by value, objects by content).
func equalRow(want, got map[string]json.RawMessage) error {
	for col, w := range want {
		g, ok := got[col]
		if !ok {
			return fmt.Errorf("column %s missing from the message", col)
		}
		eq, err := jsonEqual(w, g)
		if err != nil {
			return fmt.Errorf("column %s: %v", col, err)
		}
		if !eq {
			return fmt.Errorf("column %s = %s, the row as SELECTed has %s", col, g, w)
		}
	}
	for col := range got {
		if _, ok := want[col]; !ok {
			return fmt.Errorf("message has column %s the table lacks", col)
		}
	}
	return nil
}

// jsonEqual compares two JSON values semantically; numbers compare by
// exact rational value.
func jsonEqual(a, b json.RawMessage) (bool, error) {
	va, err := decodeJSON(a)
	if err != nil {
		return false, err
	}
	vb, err := decodeJSON(b)
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(normalise(va), normalise(vb)), nil
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON %s: %w", b, err)
	}
	return v, nil
}

// normalise replaces numbers by their exact rational value in lowest terms
// (as a string), so 1.50 and 1.5 compare equal and 1 and 2 do not.
func normalise(v any) any {
	switch x := v.(type) {
	case json.Number:
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			return "number:" + string(x)
		}
		return "number:" + r.RatString()
	case []any:
		for i := range x {
			x[i] = normalise(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = normalise(x[k])
		}
		return x
	}
	return v
}
