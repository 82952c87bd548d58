package pgsink

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/test/testenv"
)

// rowsetTable has a two-column key and a column of each way a value
// travels in a multi-row statement (text cast to the column's type, bytea,
// a SET's array literal).
func rowsetTable() *sink.Table {
	return &sink.Table{DB: "shop", Name: "rs", PK: []string{"id", "k"}, Columns: []sink.Column{
		{Name: "id", DataType: "int", ColumnType: "int(11)"},
		{Name: "k", DataType: "varchar", ColumnType: "varchar(10)"},
		{Name: "v", DataType: "varchar", ColumnType: "varchar(20)", Nullable: true},
		{Name: "n", DataType: "decimal", ColumnType: "decimal(10,2)", Precision: 10, Scale: 2, Nullable: true},
		{Name: "b", DataType: "varbinary", ColumnType: "varbinary(8)", Nullable: true},
		{Name: "st", DataType: "set", ColumnType: `set('a','b"c','d\\e')`, Nullable: true},
		{Name: "j", DataType: "json", ColumnType: "json", Nullable: true},
		{Name: "ts", DataType: "datetime", ColumnType: "datetime(6)", Precision: 6, Nullable: true},
	}}
}

// rowsetGen generates random changes of rowsetTable over a small key
// space, so that batches repeat keys, delete and insert them again, change
// them, and carry minimal images.
type rowsetGen struct {
	r   *rand.Rand
	pos uint32
}

func (g *rowsetGen) key() (int, string) {
	return g.r.IntN(12), []string{"x", "y", "z é"}[g.r.IntN(3)]
}

func (g *rowsetGen) value(col string) string {
	if g.r.IntN(6) == 0 {
		return "null"
	}
	switch col {
	case "v":
		return fmt.Sprintf(`"v%d \"q\" \\"`, g.r.IntN(100))
	case "n":
		return fmt.Sprintf(`"%d.%02d"`, g.r.IntN(1000)-500, g.r.IntN(100))
	case "b":
		return []string{`""`, `"AA=="`, `"AAEC/w=="`}[g.r.IntN(3)]
	case "st":
		return []string{`[]`, `["a"]`, `["a","b\"c","d\\e"]`}[g.r.IntN(3)]
	case "j":
		return []string{`{"a":[1,2]}`, `"s"`, `[]`, `null`}[g.r.IntN(4)]
	}
	return fmt.Sprintf(`"2026-01-%02dT12:00:00.%06d"`, 1+g.r.IntN(28), g.r.IntN(1000000))
}

// image is a row image of key (id, k) with each other column with
// probability p.
func (g *rowsetGen) image(id int, k string, p float64, withKey bool) string {
	var parts []string
	if withKey {
		parts = append(parts, fmt.Sprintf(`"id":%d`, id), fmt.Sprintf(`"k":%q`, k))
	}
	for _, c := range []string{"v", "n", "b", "st", "j", "ts"} {
		if g.r.Float64() < p {
			parts = append(parts, fmt.Sprintf("%q:%s", c, g.value(c)))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func (g *rowsetGen) change(t *testing.T, tbl *sink.Table) *envelope.Envelope {
	g.pos++
	id, k := g.key()
	full := g.r.IntN(3) > 0
	p := 1.0
	if !full {
		p = 0.4
	}
	var typ, before, after string
	switch x := g.r.IntN(10); {
	case x < 3:
		typ, after = envelope.TypeInsert, g.image(id, k, p, true)
	case x < 4:
		typ, after = envelope.TypeRead, g.image(id, k, 1, true)
	case x < 8:
		typ = envelope.TypeUpdate
		before = g.image(id, k, p, true)
		switch y := g.r.IntN(6); {
		case y == 0: // the key changes
			id2, k2 := g.key()
			after = g.image(id2, k2, p, true)
		case y < 3: // a minimal after image without the key
			after = g.image(id, k, 0.5, false)
		default:
			after = g.image(id, k, p, true)
		}
	default:
		typ, before = envelope.TypeDelete, g.image(id, k, p, true)
	}
	e := &envelope.Envelope{
		V:      envelope.Version,
		ID:     fmt.Sprintf("mysql-bin.000001:%d:0", g.pos),
		Source: envelope.Source{Name: "main", ServerID: 1, History: "h1", File: "mysql-bin.000001", Pos: g.pos},
		DB:     tbl.DB, Table: tbl.Name, Type: typ, PK: tbl.PK,
	}
	for _, im := range []struct {
		s   string
		dst *map[string]json.RawMessage
	}{{before, &e.Before}, {after, &e.After}} {
		if im.s != "" {
			if err := json.Unmarshal([]byte(im.s), im.dst); err != nil {
				t.Fatalf("image %s: %v", im.s, err)
			}
		}
	}
	if g.r.IntN(40) == 0 { // another binlog history
		e.Source.History, e.Source.Pos = "h2", g.pos/2
	}
	return e
}

// newTestSink connects a sink to database "target" of p with its own
// schemas.
func newTestSink(t *testing.T, p *testenv.Postgres, name string, rowByRow bool) *Sink {
	t.Helper()
	s, err := New(context.Background(), Config{DSN: p.DSN("target"), Schema: name, SyncSchema: name + "_sync"})
	if err != nil {
		t.Fatal(err)
	}
	s.rowByRow = rowByRow
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// sinkState is what a sink holds for tbl: its rows, its tombstones (key →
// head|tail) and the progress of key.
func sinkState(t *testing.T, s *Sink, tbl *sink.Table, key string) (map[string]map[string]json.RawMessage, map[string]string, client.Progress) {
	t.Helper()
	ctx := context.Background()
	rows, err := s.Rows(ctx, tbl)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.pool.Query(ctx, "SELECT key, head || '|' || tail FROM "+s.deleted)
	if err != nil {
		t.Fatal(err)
	}
	tombs, err := pgx.CollectRows(r, func(row pgx.CollectableRow) ([2]string, error) {
		var kv [2]string
		err := row.Scan(&kv[0], &kv[1])
		return kv, err
	})
	if err != nil {
		t.Fatal(err)
	}
	tm := map[string]string{}
	for _, kv := range tombs {
		tm[kv[0]] = kv[1]
	}
	prog, _, err := s.Dedup().Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return rows, tm, prog
}

// TestMultiRowEqualsRowByRow applies random batches (repeated keys,
// deletes and inserts again, key changes, minimal images, replays, late
// changes, another history) with the multi-row statements and with one
// statement per change: the rows, tombstones and progress are the same
// after every batch, and no multi-row statement failed.
func TestMultiRowEqualsRowByRow(t *testing.T) {
	t.Parallel()
	p := testenv.StartPostgres(t)
	p.CreateDB(t, "target")
	multi, single := newTestSink(t, p, "multi", false), newTestSink(t, p, "single", true)
	tbl := rowsetTable()
	ctx := context.Background()
	g := &rowsetGen{r: rand.New(rand.NewPCG(1, 2))}
	var history []*envelope.Envelope
	runs := map[opKind]int{}
	var batches int
	for range 150 {
		var changes []*envelope.Envelope
		switch x := g.r.IntN(10); {
		case x == 0 && len(history) > 0: // a replay of earlier changes, some late
			for range 1 + g.r.IntN(30) {
				changes = append(changes, history[g.r.IntN(len(history))])
			}
		default:
			for range 1 + g.r.IntN(60) {
				changes = append(changes, g.change(t, tbl))
			}
			history = append(history, changes...)
		}
		b := sink.Batch{Table: tbl, Changes: changes, Key: "dbsync.shop.rs",
			Progress: client.Progress{Last: client.CoordinateOf(changes[len(changes)-1])}}

		tg, err := multi.prepared(ctx, tbl, true)
		if err != nil {
			t.Fatal(err)
		}
		ops := make([]op, len(changes))
		for i, e := range changes {
			if ops[i], err = multi.change(tg, e); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < len(ops); {
			n := segment(ops[i:])
			if n > 1 {
				runs[ops[i].kind]++
			}
			i += n
		}

		errM, errS := multi.Apply(ctx, b), single.Apply(ctx, b)
		if errM != nil || errS != nil {
			t.Fatalf("batch %d: Apply: multi-row %v, row by row %v", batches, errM, errS)
		}
		batches++
		rm, tm, pm := sinkState(t, multi, tbl, b.Key)
		rs, ts, ps := sinkState(t, single, tbl, b.Key)
		if !reflect.DeepEqual(rm, rs) || !reflect.DeepEqual(tm, ts) || !reflect.DeepEqual(pm, ps) {
			t.Fatalf("batch %d of %d changes: multi-row and row by row differ:\nrows %s\n  vs %s\ntombstones %v\n        vs %v",
				batches, len(changes), mustMarshal(rm), mustMarshal(rs), tm, ts)
		}
	}
	if n := multi.fallbacks.Load(); n != 0 {
		t.Errorf("%d batches ran again row by row after a multi-row statement failed", n)
	}
	if runs[opUpsert] < 50 || runs[opDelete] < 10 {
		t.Errorf("multi-row runs: %d of upserts, %d of deletes; want more", runs[opUpsert], runs[opDelete])
	}
	t.Logf("%d batches; multi-row runs: %d of upserts, %d of deletes", batches, runs[opUpsert], runs[opDelete])
}

// TestMultiRowOneValueTwoKeys writes one decimal key spelled two ways in a
// batch: one row that a multi-row upsert cannot touch twice. Apply runs
// the batch again with one statement per change, with the result of one
// statement per change.
func TestMultiRowOneValueTwoKeys(t *testing.T) {
	t.Parallel()
	p := testenv.StartPostgres(t)
	p.CreateDB(t, "target")
	multi, single := newTestSink(t, p, "multi", false), newTestSink(t, p, "single", true)
	tbl := &sink.Table{DB: "shop", Name: "dec", PK: []string{"id"}, Columns: []sink.Column{
		{Name: "id", DataType: "decimal", ColumnType: "decimal(5,2)", Precision: 5, Scale: 2},
		{Name: "v", DataType: "varchar", ColumnType: "varchar(20)", Nullable: true},
	}}
	var changes []*envelope.Envelope
	for i, im := range []string{`{"id":"1.5","v":"a"}`, `{"id":"2.00","v":"b"}`, `{"id":"1.50","v":"c"}`} {
		e := &envelope.Envelope{V: envelope.Version, ID: fmt.Sprint(i), DB: "shop", Table: "dec", Type: envelope.TypeInsert, PK: tbl.PK,
			Source: envelope.Source{Name: "main", History: "h1", File: "mysql-bin.000001", Pos: uint32(10 + i)}}
		if err := json.Unmarshal([]byte(im), &e.After); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, e)
	}
	b := sink.Batch{Table: tbl, Changes: changes, Key: "k", Progress: client.Progress{Last: client.CoordinateOf(changes[2])}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := multi.Apply(ctx, b); err != nil {
		t.Fatalf("Apply multi-row: %v", err)
	}
	if err := single.Apply(ctx, b); err != nil {
		t.Fatalf("Apply row by row: %v", err)
	}
	rm, tm, _ := sinkState(t, multi, tbl, b.Key)
	rs, ts, _ := sinkState(t, single, tbl, b.Key)
	if !reflect.DeepEqual(rm, rs) || !reflect.DeepEqual(tm, ts) {
		t.Fatalf("multi-row %s %v, row by row %s %v", mustMarshal(rm), tm, mustMarshal(rs), ts)
	}
	if v := string(rm[`["1.50"]`]["v"]); v != `"c"` {
		t.Errorf(`row 1.50: v %s, want "c" (the later change)`, v)
	}
	if n := multi.fallbacks.Load(); n != 1 {
		t.Errorf("%d batches ran again row by row, want 1", n)
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
