package faults

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// msg builds the stored message of row id at coordinate (file, pos, row)
// with the given name.
func msg(t *testing.T, file int, pos uint32, row int, id int64, name string) []byte {
	t.Helper()
	e := envelope.Envelope{
		V:      envelope.Version,
		ID:     fmt.Sprintf("mysql-bin.%06d:%d:%d", file, pos, row),
		Source: envelope.Source{File: fmt.Sprintf("mysql-bin.%06d", file), Pos: pos, Row: row},
		DB:     "fx", Table: "t0", Type: envelope.TypeInsert, PK: []string{"id"},
		After: map[string]json.RawMessage{"id": json.RawMessage(fmt.Sprint(id)), "name": mustJSON(t, name)},
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withPrev sets the "prev" of a stored message ("" removes it).
func withPrev(t *testing.T, data []byte, prev string) []byte {
	t.Helper()
	var e envelope.Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	e.Prev = prev
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rows is the SELECT side: ids 1..n named "r<id>".
func rows(t *testing.T, n int) *tableRows {
	r := &tableRows{byID: map[int64]map[string]json.RawMessage{}}
	for id := int64(1); id <= int64(n); id++ {
		r.ids = append(r.ids, id)
		r.byID[id] = map[string]json.RawMessage{"id": json.RawMessage(fmt.Sprint(id)), "name": mustJSON(t, fmt.Sprintf("r%d", id))}
	}
	return r
}

// stream returns messages for ids in order: id i at file 1, pos 100*i.
func stream(t *testing.T, ids ...int64) [][]byte {
	var out [][]byte
	for _, id := range ids {
		out = append(out, msg(t, 1, uint32(100*id), 0, id, fmt.Sprintf("r%d", id)))
	}
	return out
}

func TestCheckTable(t *testing.T) {
	t.Parallel()
	want := rows(t, 5)
	committed := want.ids
	cases := []struct {
		name      string
		raw       [][]byte
		ok        bool
		lost, dup int
		problem   string
	}{
		{"all in order", stream(t, 1, 2, 3, 4, 5), true, 0, 0, ""},
		{"replay of a suffix", stream(t, 1, 2, 3, 4, 2, 3, 4, 5), true, 0, 3, ""},
		{"replay of the last message", stream(t, 1, 2, 3, 3, 4, 5), true, 0, 1, ""},
		{"replay restarted by a second crash", stream(t, 1, 2, 3, 4, 2, 3, 1, 2, 3, 4, 5), true, 0, 6, ""},
		{"loss in the middle", stream(t, 1, 2, 4, 5), false, 1, 0, "not delivered"},
		{"loss at the end", stream(t, 1, 2, 3), false, 2, 0, "not delivered"},
		{"reordered", stream(t, 1, 3, 2, 4, 5), false, 0, 0, "out of binlog order"},
		{"replay with a gap", stream(t, 1, 2, 3, 4, 2, 4, 5), false, 0, 2, "skips ahead"},
		{"new row before the replay caught up", stream(t, 1, 2, 3, 2, 4, 5), false, 0, 1, "new while a replay"},
		{"phantom row", append(stream(t, 1, 2, 3, 4, 5), msg(t, 1, 900, 0, 9, "r9")), false, 0, 0, "MariaDB does not hold"},
		{"wrong value", append(stream(t, 1, 2, 3, 4), msg(t, 1, 500, 0, 5, "garbled")), false, 0, 0, "column name"},
		{"replay with different content", append(stream(t, 1, 2, 3, 4, 5), msg(t, 1, 500, 0, 5, "r5 ")), false, 0, 1, "different content"},
		{"replay naming another prev (a new producer run)", append(append(stream(t, 1, 2, 3, 4), withPrev(t, msg(t, 1, 500, 0, 5, "r5"), "mysql-bin.000001:400:0")),
			withPrev(t, msg(t, 1, 500, 0, 5, "r5"), "")), true, 0, 1, ""},
		{"prefix then nothing, without Prefix", stream(t, 1, 2, 3), false, 2, 0, "not delivered"},
	}
	for _, tc := range cases {
		tr := checkTable("fx.t0", committed, want, tc.raw, CheckOptions{})
		ok := len(tr.problems) == 0
		if ok != tc.ok || tr.lost != tc.lost || tr.duplicates != tc.dup {
			t.Errorf("%s: ok=%v lost=%d dup=%d problems=%q; want ok=%v lost=%d dup=%d", tc.name, ok, tr.lost, tr.duplicates, tr.problems, tc.ok, tc.lost, tc.dup)
			continue
		}
		if tc.problem != "" && !strings.Contains(strings.Join(tr.problems, "; "), tc.problem) {
			t.Errorf("%s: problems %q, want one mentioning %q", tc.name, tr.problems, tc.problem)
		}
		if tc.ok && tr.delivered != len(committed) {
			t.Errorf("%s: delivered %d, want %d", tc.name, tr.delivered, len(committed))
		}
	}
}

// TestCheckTablePrefix: with Prefix, a broker holding the first committed
// rows and nothing after is fine, a gap is not; NotAfter catches a row
// delivered behind the change that stopped the producer.
func TestCheckTablePrefix(t *testing.T) {
	t.Parallel()
	want := rows(t, 5)
	if tr := checkTable("fx.t0", want.ids, want, stream(t, 1, 2, 3), CheckOptions{Prefix: true}); len(tr.problems) != 0 || tr.lost != 0 {
		t.Errorf("prefix: %+v", tr)
	}
	if tr := checkTable("fx.t0", want.ids, want, stream(t, 1, 3), CheckOptions{Prefix: true}); tr.lost != 1 {
		t.Errorf("gap in a prefix: lost %d, want 1 (%q)", tr.lost, tr.problems)
	}
	stop := &envelope.Source{File: "mysql-bin.000001", Pos: 250}
	if tr := checkTable("fx.t0", want.ids, want, stream(t, 1, 2, 3), CheckOptions{Prefix: true, NotAfter: stop}); !strings.Contains(strings.Join(tr.problems, ";"), "something behind it was published") {
		t.Errorf("row 3 (pos 300) behind the stop at 250: problems %q", tr.problems)
	}
}

func TestCheckTableCommitOrder(t *testing.T) {
	t.Parallel()
	// Binlog order 1, 2, 3 but commit order 1, 3, 2: reported.
	want := rows(t, 3)
	tr := checkTable("fx.t0", []int64{1, 3, 2}, want, stream(t, 1, 2, 3), CheckOptions{})
	if !strings.Contains(strings.Join(tr.problems, ";"), "commit order") {
		t.Fatalf("problems %q, want a commit-order problem", tr.problems)
	}
}

func TestCheckTableFileOrder(t *testing.T) {
	t.Parallel()
	// mysql-bin.000010 sorts after mysql-bin.000009 by number.
	want := rows(t, 2)
	raw := [][]byte{msg(t, 9, 900, 0, 1, "r1"), msg(t, 10, 4, 0, 2, "r2")}
	if tr := checkTable("fx.t0", want.ids, want, raw, CheckOptions{}); len(tr.problems) != 0 {
		t.Fatalf("problems %q", tr.problems)
	}
	raw = [][]byte{msg(t, 10, 4, 0, 1, "r1"), msg(t, 9, 900, 0, 2, "r2")}
	if tr := checkTable("fx.t0", want.ids, want, raw, CheckOptions{}); len(tr.problems) == 0 {
		t.Fatal("a change in an older binlog file after a newer one passed")
	}
}

func TestContractJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		col  column
		in   string
		want string
	}{
		{column{dataType: "bigint"}, "-42", `-42`},
		{column{dataType: "bigint", columnType: "bigint(20) unsigned"}, "18446744073709551615", `18446744073709551615`},
		{column{dataType: "decimal"}, "-12.50", `"-12.50"`},
		{column{dataType: "datetime"}, "2026-01-02 03:04:05.000123", `"2026-01-02T03:04:05.000123"`},
		{column{dataType: "timestamp"}, "2026-01-02 03:04:05", `"2026-01-02T03:04:05Z"`},
		{column{dataType: "tinyint", columnType: "tinyint(1)"}, "1", `1`},
		{column{dataType: "varchar"}, `é "q"`, `"é \"q\""`},
		{column{dataType: "longtext", json: true}, `{"a": [1, 2.50]}`, `{"a": [1, 2.50]}`},
		{column{dataType: "set"}, "a,b", `["a","b"]`},
		{column{dataType: "varbinary"}, "\x00\xff", `"AP8="`},
	}
	for _, tc := range cases {
		got, err := contractJSON(tc.col, []byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s %q: %s, %v; want %s", tc.col.dataType, tc.in, got, err, tc.want)
		}
	}
	if got, _ := contractJSON(column{dataType: "int"}, nil); string(got) != "null" {
		t.Errorf("NULL = %s", got)
	}
	if _, err := contractJSON(column{dataType: "geometry", columnType: "geometry"}, []byte("x")); err == nil {
		t.Error("an unsupported type was accepted")
	}
}

func TestEqualRow(t *testing.T) {
	t.Parallel()
	want := map[string]json.RawMessage{"n": json.RawMessage(`1.50`), "doc": json.RawMessage(`{"a":[1,2],"b":"x"}`), "s": json.RawMessage(`"é"`)}
	same := map[string]json.RawMessage{"n": json.RawMessage(`1.5`), "doc": json.RawMessage(`{"b":"x","a":[1,2]}`), "s": json.RawMessage(`"\u00e9"`)}
	if err := equalRow(want, same); err != nil {
		t.Fatalf("equal rows differ: %v", err)
	}
	for name, got := range map[string]map[string]json.RawMessage{
		"number":  {"n": json.RawMessage(`1.51`), "doc": same["doc"], "s": same["s"]},
		"doc":     {"n": same["n"], "doc": json.RawMessage(`{"a":[2,1],"b":"x"}`), "s": same["s"]},
		"missing": {"n": same["n"], "doc": same["doc"]},
		"extra":   {"n": same["n"], "doc": same["doc"], "s": same["s"], "x": json.RawMessage(`1`)},
		"string":  {"n": json.RawMessage(`"1.50"`), "doc": same["doc"], "s": same["s"]},
	} {
		if err := equalRow(want, got); err == nil {
			t.Errorf("%s: a different row compared equal", name)
		}
	}
}
