package pgsink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"os"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/pgsink"
	"github.com/dbsync/dbsync/test/testenv"
)

// testCtx is a context for one test's calls.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startPG starts a PostgreSQL server with an empty database "target".
func startPG(t *testing.T) *testenv.Postgres {
	t.Helper()
	p := testenv.StartPostgres(t)
	p.CreateDB(t, "target")
	return p
}

// newSink connects a sink to p's database "target"; it is closed at
// cleanup.
func newSink(t *testing.T, p *testenv.Postgres, cfg pgsink.Config) *pgsink.Sink {
	t.Helper()
	cfg.DSN = p.DSN("target")
	s, err := pgsink.New(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("pgsink.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// kvTable is shop.kv (id INT PRIMARY KEY, v VARCHAR(20)) as LoadTables
// describes it.
func kvTable() *sink.Table {
	return &sink.Table{DB: "shop", Name: "kv", PK: []string{"id"}, Columns: []sink.Column{
		{Name: "id", DataType: "int", ColumnType: "int(11)", Precision: 10},
		{Name: "v", DataType: "varchar", ColumnType: "varchar(20)", Nullable: true, MaxLength: 20},
	}}
}

// image parses a row image written as a JSON object.
func image(t testing.TB, s string) map[string]json.RawMessage {
	t.Helper()
	if s == "" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("row image %s: %v", s, err)
	}
	return m
}

// change builds a change of table tbl at binlog position pos of
// mysql-bin.000001 (history "h1"); before and after are JSON objects or "".
func change(t *testing.T, tbl *sink.Table, typ string, pos uint32, before, after string) *envelope.Envelope {
	t.Helper()
	e := &envelope.Envelope{
		V:      envelope.Version,
		ID:     "mysql-bin.000001:" + itoa(pos) + ":0",
		Source: envelope.Source{Name: "main", ServerID: 1, History: "h1", File: "mysql-bin.000001", Pos: pos, TS: time.Unix(1700000000, 0).UTC()},
		DB:     tbl.DB, Table: tbl.Name, Type: typ, PK: tbl.PK,
		Before: image(t, before), After: image(t, after),
	}
	if typ == envelope.TypeRead {
		e.Source.Snapshot = &envelope.SnapshotRef{ID: "snap-1", Chunk: 1}
	}
	return e
}

func itoa(n uint32) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// batch is a batch of tbl's changes whose progress is the last change's
// coordinate, under key "dbsync.shop.<table>".
func batch(tbl *sink.Table, changes ...*envelope.Envelope) sink.Batch {
	b := sink.Batch{Table: tbl, Changes: changes, Key: "dbsync." + tbl.String()}
	if len(changes) > 0 {
		b.Progress = client.Progress{Last: client.CoordinateOf(changes[len(changes)-1])}
	}
	return b
}

// wantRows compares Rows(tbl) with want (primary key JSON → row image as a
// JSON object), value for value: byte for byte, but the columns named in
// jsonCols, which are compared as JSON.
func wantRows(t *testing.T, s *pgsink.Sink, tbl *sink.Table, want map[string]string, jsonCols ...string) {
	t.Helper()
	got, err := s.Rows(testCtx(t), tbl)
	if err != nil {
		t.Fatalf("Rows(%s): %v", tbl, err)
	}
	wantImages := map[string]map[string]json.RawMessage{}
	for k, v := range want {
		wantImages[k] = image(t, v)
	}
	compareRows(t, got, wantImages, jsonCols...)
}

// compareRows reports every difference between got and want.
func compareRows(t *testing.T, got, want map[string]map[string]json.RawMessage, jsonCols ...string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	isJSON := map[string]bool{}
	for _, c := range jsonCols {
		isJSON[c] = true
	}
	for _, k := range keys {
		g, w := got[k], want[k]
		switch {
		case g == nil:
			t.Errorf("row %s: missing from PostgreSQL, want %s", k, mustJSON(w))
			continue
		case w == nil:
			t.Errorf("row %s: in PostgreSQL (%s), want none", k, mustJSON(g))
			continue
		}
		cols := map[string]bool{}
		for c := range g {
			cols[c] = true
		}
		for c := range w {
			cols[c] = true
		}
		for c := range cols {
			gv, wv := compact(g[c]), compact(w[c])
			if isJSON[c] {
				if !jsonEqual(gv, wv) {
					t.Errorf("row %s column %s: %s, want %s (as JSON)", k, c, gv, wv)
				}
				continue
			}
			if !bytes.Equal(gv, wv) {
				t.Errorf("row %s column %s: %s, want %s", k, c, gv, wv)
			}
		}
	}
}

func compact(v json.RawMessage) []byte {
	if v == nil {
		return []byte("<absent>")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	dx, dy := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	dx.UseNumber()
	dy.UseNumber()
	if dx.Decode(&x) != nil || dy.Decode(&y) != nil {
		return bytes.Equal(a, b)
	}
	return sameJSON(x, y)
}

// sameJSON compares decoded JSON values, numbers by value (jsonb writes
// 1e+300 out in digits).
func sameJSON(x, y any) bool {
	switch x := x.(type) {
	case json.Number:
		y, ok := y.(json.Number)
		if !ok {
			return false
		}
		a, okA := new(big.Rat).SetString(string(x))
		b, okB := new(big.Rat).SetString(string(y))
		return okA && okB && a.Cmp(b) == 0
	case []any:
		y, ok := y.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(x, y)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// golden returns the changes of pkg/binlog/testdata/all_types.golden.json
// (the producer's output for all_types.sql), each given a coordinate: the
// i-th at mysql-bin.000001 position 1000+100*i.
func golden(t *testing.T) []*envelope.Envelope {
	t.Helper()
	data, err := os.ReadFile("../../binlog/testdata/all_types.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var changes []*envelope.Envelope
	if err := json.Unmarshal(data, &changes); err != nil {
		t.Fatalf("all_types.golden.json: %v", err)
	}
	for i, e := range changes {
		e.Source = envelope.Source{Name: "main", ServerID: 1, History: "h1", File: "mysql-bin.000001", Pos: uint32(1000 + 100*i)}
		e.ID = "mysql-bin.000001:" + itoa(e.Source.Pos) + ":0"
	}
	return changes
}

// pgColumns returns column → "type [NOT NULL]" of a PostgreSQL table.
func pgColumns(t *testing.T, conn *pgx.Conn, schema, table string) map[string]string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
		pgx.Identifier{schema, table}.Sanitize())
	if err != nil {
		t.Fatalf("columns of %s.%s: %v", schema, table, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		var notNull bool
		if err := rows.Scan(&name, &typ, &notNull); err != nil {
			t.Fatal(err)
		}
		if notNull {
			typ += " NOT NULL"
		}
		out[name] = typ
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
