package pgsink_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/pgsink"
	"github.com/dbsync/dbsync/test/testenv"
)

// allTypesColumns is the PostgreSQL table the sink creates for
// shop.all_types of pkg/binlog/testdata/all_types.sql: the documented type
// mapping.
var allTypesColumns = map[string]string{
	"id": "integer NOT NULL", "ti": "smallint", "tiu": "smallint", "si": "smallint", "siu": "integer",
	"mi": "integer", "miu": "integer", "i": "integer", "iu": "bigint", "bi": "bigint", "biu": "numeric(20,0)",
	"flag": "smallint", "dec1": "numeric(10,2)", "dec2": "numeric(65,30)", "f": "real", "d": "double precision",
	"b1": "smallint", "b64": "numeric(20,0)",
	"c": "text", "vc": "text", "tt": "text", "t": "text", "mt": "text", "lt": "text", "lat": "text",
	"bin": "bytea", "vbin": "bytea", "tb": "bytea", "bl": "bytea", "mb": "bytea", "lb": "bytea",
	"j": "jsonb", "dt": "date", "tm": "interval", "tm6": "interval", "yr": "smallint",
	"dtm": "timestamp(0) without time zone", "dtm6": "timestamp(6) without time zone",
	"ts": "timestamp(0) with time zone", "ts6": "timestamp(6) with time zone",
	"e": "text", "st": "text[]", "g": "bytea",
	"_dbsync": "text",
}

// TestEveryContractType creates shop.all_types on MariaDB, describes it
// with LoadTables, prepares it on PostgreSQL (checking every column's
// type), applies the producer's golden changes of every type, and compares
// Rows with the after images value for value.
func TestEveryContractType(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{NoBinlog: true})
	m.Exec(t, testenv.ReadSQLFile(t, "../../binlog/testdata/all_types.sql")[:2]...)
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)

	tables, err := sink.LoadTables(ctx, m.DB(t), [][2]string{{"shop", "all_types"}})
	if err != nil {
		t.Fatalf("LoadTables: %v", err)
	}
	tbl := tables[0]
	if err := s.Prepare(ctx, tbl); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	got := pgColumns(t, p.Conn(t, "target"), "shop", "all_types")
	for c, want := range allTypesColumns {
		if got[c] != want {
			t.Errorf("PostgreSQL column %s is %q, want %q", c, got[c], want)
		}
	}
	if len(got) != len(allTypesColumns) {
		t.Errorf("PostgreSQL columns %v, want %v", got, allTypesColumns)
	}

	changes := golden(t)
	want := map[string]map[string]json.RawMessage{}
	for _, e := range changes {
		switch e.Type {
		case envelope.TypeInsert, envelope.TypeUpdate:
			want[fmt.Sprintf("[%s]", compact(e.After["id"]))] = e.After
		case envelope.TypeDelete:
			delete(want, fmt.Sprintf("[%s]", compact(e.Before["id"])))
		}
	}
	// One change per batch, then all of them again as one batch (a replay
	// changes nothing).
	for _, e := range changes {
		if err := s.Apply(ctx, batch(tbl, e)); err != nil {
			t.Fatalf("Apply %s %s: %v", e.Type, e.ID, err)
		}
	}
	rows, err := s.Rows(ctx, tbl)
	if err != nil {
		t.Fatalf("Rows: %v", err)
	}
	compareRows(t, rows, want, "j")
	if err := s.Apply(ctx, batch(tbl, changes...)); err != nil {
		t.Fatalf("Apply of all changes again: %v", err)
	}
	rows, err = s.Rows(ctx, tbl)
	if err != nil {
		t.Fatalf("Rows: %v", err)
	}
	compareRows(t, rows, want, "j")

	// The JSON column holds jsonb (queryable), not text.
	var a string
	if err := p.Conn(t, "target").QueryRow(ctx, `SELECT j->'a'->>2 FROM shop.all_types WHERE id = 4 OR id = 3 ORDER BY id LIMIT 1`).Scan(new(any)); err != nil {
		t.Fatalf("query the jsonb column: %v", err)
	}
	if err := p.Conn(t, "target").QueryRow(ctx, `SELECT st[2] || ' ' || (j #>> '{}') FROM shop.all_types WHERE id = 1`).Scan(&a); err != nil || a != "green just a string" {
		t.Errorf("SET as text[] and JSON as jsonb: %q, %v; want \"green just a string\"", a, err)
	}
}

// TestEdgeValues applies values at the edges of each type's range, zero
// dates in NOT NULL columns, fractions with fewer digits than the column's
// and floats in exponent form, and compares Rows with them.
func TestEdgeValues(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{NoBinlog: true})
	m.Exec(t, "CREATE DATABASE shop", `CREATE TABLE shop.edge (
		id BIGINT UNSIGNED NOT NULL, k VARCHAR(10) NOT NULL,
		d DATE NOT NULL, dt DATETIME NOT NULL, dt3 DATETIME(3) NOT NULL, ts TIMESTAMP(6) NOT NULL DEFAULT '2000-01-01',
		tm TIME(3) NOT NULL, f FLOAT, dbl DOUBLE, dec0 DECIMAL(30,0) UNSIGNED, b BIT(64), b10 BIT(10), yr YEAR,
		mi MEDIUMINT UNSIGNED, e ENUM('a','b c','x,y') NOT NULL, st SET('p','q') NOT NULL, txt TEXT, bin VARBINARY(8),
		j JSON,
		PRIMARY KEY (k, id))`)
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)
	tables, err := sink.LoadTables(ctx, m.DB(t), [][2]string{{"shop", "edge"}})
	if err != nil {
		t.Fatalf("LoadTables: %v", err)
	}
	tbl := tables[0]
	rows := []string{
		// Zero dates in NOT NULL columns; the smallest and largest values.
		`{"id":0,"k":"zero","d":"0000-00-00","dt":"0000-00-00 00:00:00","dt3":"0000-00-00 00:00:00.000","ts":"0000-00-00 00:00:00.000000",
		  "tm":"00:00:00","f":0,"dbl":0,"dec0":"0","b":0,"b10":0,"yr":0,"mi":0,"e":"","st":[],"txt":"","bin":"","j":null}`,
		`{"id":18446744073709551615,"k":"max","d":"9999-12-31","dt":"9999-12-31T23:59:59","dt3":"9999-12-31T23:59:59.999","ts":"2038-01-19T03:14:07.999999Z",
		  "tm":"838:59:59","f":3.4028235e+38,"dbl":1.7976931348623157e+308,"dec0":"999999999999999999999999999999","b":18446744073709551615,
		  "b10":1023,"yr":2155,"mi":16777215,"e":"x,y","st":["p","q"],"txt":"tab\tquote\" back\\ ctl\u0001 line\u2028 é😀","bin":"AAECAwQFBgc=","j":{"k":[true,false,null,-0.5,1e+300]}}`,
		`{"id":1,"k":"min","d":"1000-01-01","dt":"1000-01-01T00:00:00","dt3":"1969-12-31T23:59:59.001","ts":"1970-01-01T00:00:01.000000Z",
		  "tm":"-838:59:59","f":-1e-7,"dbl":-5e-324,"dec0":"1","b":1,"b10":512,"yr":1901,"mi":1,"e":"b c","st":["q"],"txt":null,"bin":null,"j":"s"}`,
		// A fraction PostgreSQL prints shorter; TIME with a fraction.
		`{"id":2,"k":"frac","d":"2026-11-21","dt":"2026-11-21T12:34:56","dt3":"2026-11-21T12:34:56.100","ts":"2026-11-21T04:34:56.120000Z",
		  "tm":"-00:00:01.500","f":1.1,"dbl":0.1,"dec0":"12","b":255,"b10":1,"yr":2026,"mi":8388608,"e":"a","st":["p"],"txt":"x","bin":"/w==","j":[]}`,
	}
	want := map[string]string{}
	var changes []*envelope.Envelope
	for i, r := range rows {
		e := change(t, tbl, envelope.TypeInsert, uint32(100+i), "", r)
		changes = append(changes, e)
		want[fmt.Sprintf("[%s,%s]", compact(e.After["k"]), compact(e.After["id"]))] = r
	}
	if err := s.Apply(ctx, batch(tbl, changes...)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wantRows(t, s, tbl, want, "j")

	got := pgColumns(t, p.Conn(t, "target"), "shop", "edge")
	for c, w := range map[string]string{"id": "numeric(20,0) NOT NULL", "d": "date NOT NULL", "dt3": "timestamp(3) without time zone NOT NULL",
		"ts": "timestamp(6) with time zone NOT NULL", "tm": "interval NOT NULL", "dec0": "numeric(30,0)", "b10": "smallint", "b": "numeric(20,0)",
		"mi": "integer", "st": "text[] NOT NULL"} {
		if got[c] != w {
			t.Errorf("PostgreSQL column %s is %q, want %q", c, got[c], w)
		}
	}
	// Zero dates are -infinity: they sort before every date.
	var n int
	if err := p.Conn(t, "target").QueryRow(ctx, `SELECT count(*) FROM shop.edge WHERE d = '-infinity' AND dt = '-infinity' AND ts = '-infinity' AND d < '0001-01-01'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows with -infinity zero dates: %d, %v; want 1", n, err)
	}
}
