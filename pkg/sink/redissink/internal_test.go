package redissink

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/test/testenv"
)

func TestParseKeyPattern(t *testing.T) {
	for _, p := range []string{DefaultKeyPattern, "user:{pk}", "{pk}", "c/{table}@{db}/{pk}/x"} {
		if _, err := parseKeyPattern(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for p, want := range map[string]string{
		"{db}:{table}":       "holds {pk} 0 times",
		"{pk}:{pk}":          "holds {pk} 2 times",
		"{schema}:{pk}":      "unknown placeholder",
		"{db}:{tabel}:{pk}":  "unknown placeholder",
		"{db}:{table}:{PK}":  "holds {pk} 0 times",
		"{db}:{table}:{pk}{": "unknown placeholder",
	} {
		if _, err := parseKeyPattern(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", p, err, want)
		}
	}
}

func TestRowKeys(t *testing.T) {
	kp, _ := parseKeyPattern(DefaultKeyPattern)
	one := kp.forTable(&sink.Table{DB: "shop", Name: "orders", PK: []string{"id"}})
	two := kp.forTable(&sink.Table{DB: "shop", Name: "pairs", PK: []string{"a", "b"}})
	odd := kp.forTable(&sink.Table{DB: `a:b\c`, Name: "t:1", PK: []string{"id"}})
	for _, tc := range []struct {
		tk    tableKeys
		image string
		want  string
	}{
		{one, `{"id":7}`, "shop:orders:7"},
		{one, `{"id":18446744073709551615}`, "shop:orders:18446744073709551615"},
		{one, `{"id":"abc"}`, "shop:orders:abc"},
		{one, `{"id":"a:b\\c"}`, `shop:orders:a:b\c`},
		{one, `{"id":"2026-11-21T12:34:56.123456"}`, "shop:orders:2026-11-21T12:34:56.123456"},
		{one, `{"id":"日本\"語"}`, `shop:orders:日本"語`},
		{one, `{"id":"12.50"}`, "shop:orders:12.50"},
		{one, `{"id":"AP8BAg=="}`, "shop:orders:AP8BAg=="},
		{two, `{"a":"x","b":1}`, "shop:pairs:x:1"},
		{two, `{"a":"x:1","b":2}`, `shop:pairs:x\:1:2`},
		{two, `{"a":"x","b":"1:2"}`, `shop:pairs:x:1\:2`},
		{two, `{"a":"x\\","b":":"}`, `shop:pairs:x\\:\:`},
		{two, `{"a":"","b":""}`, `shop:pairs::`},
		{odd, `{"id":1}`, `a\:b\\c:t\:1:1`},
	} {
		var image map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.image), &image); err != nil {
			t.Fatal(err)
		}
		got, err := tc.tk.key(image, nil)
		if err != nil || got != tc.want {
			t.Errorf("%s of %s: %q, %v; want %q", tc.image, tc.tk.table, got, err, tc.want)
		}
	}
	// Distinct composite keys stay distinct.
	a, _ := two.key(map[string]json.RawMessage{"a": json.RawMessage(`"x:y"`), "b": json.RawMessage(`"z"`)}, nil)
	b, _ := two.key(map[string]json.RawMessage{"a": json.RawMessage(`"x"`), "b": json.RawMessage(`"y:z"`)}, nil)
	if a == b {
		t.Errorf(`("x:y","z") and ("x","y:z") share the key %q`, a)
	}
	// Missing key column: from the fallback, else a schema change.
	if got, err := two.key(map[string]json.RawMessage{"a": json.RawMessage(`"x"`)}, map[string]json.RawMessage{"b": json.RawMessage(`3`)}); err != nil || got != "shop:pairs:x:3" {
		t.Errorf("key from image and fallback: %q, %v", got, err)
	}
	if _, err := two.key(map[string]json.RawMessage{"a": json.RawMessage(`"x"`)}, nil); err == nil {
		t.Errorf("key without column b: no error")
	}
}

func TestTypedValue(t *testing.T) {
	for raw, want := range map[string]string{
		`"abc"`: "abc", `""`: "", `"a\"b\\c\nd"`: "a\"b\\c\nd", `"caf\u00e9"`: "café", `12.5`: "12.5",
		`-9223372036854775808`: "-9223372036854775808", `true`: "true", `[1,"a"]`: `[1,"a"]`, `{"a":null}`: `{"a":null}`,
	} {
		if got, null := typedValue(json.RawMessage(raw)); got != want || null {
			t.Errorf("typedValue(%s) = %q, %t; want %q", raw, got, null, want)
		}
	}
	if _, null := typedValue(json.RawMessage("null")); !null {
		t.Errorf("typedValue(null) is not null")
	}
}

func TestVersionsCompareLikeCoordinates(t *testing.T) {
	src := func(file string, pos uint32, row int) envelope.Source {
		return envelope.Source{Name: "main", History: "h", File: file, Pos: pos, Row: row}
	}
	ordered := []envelope.Source{
		src("mysql-bin.000001", 4, 0), src("mysql-bin.000001", 4, 1), src("mysql-bin.000001", 4, 10),
		src("mysql-bin.000001", 120, 0), src("mysql-bin.000001", 4294967295, 0), src("mysql-bin.000002", 4, 0),
		src("mysql-bin.999999", 4, 0), src("mysql-bin.1000000", 4, 0), src("mysql-bin.1000000", 4, 9999999999),
	}
	for i := 1; i < len(ordered); i++ {
		h0, t0 := sink.Version(ordered[i-1])
		h1, t1 := sink.Version(ordered[i])
		if h0 != h1 || !(t0 < t1) || len(t1) != sink.VersionTailLen {
			t.Errorf("%+v then %+v: heads %q %q, tails %q %q; want one head and increasing tails of %d bytes", ordered[i-1], ordered[i], h0, h1, t0, t1, sink.VersionTailLen)
		}
		if c := (client.Coordinate{File: ordered[i-1].File, Pos: ordered[i-1].Pos, Row: ordered[i-1].Row}).Compare(client.Coordinate{File: ordered[i].File, Pos: ordered[i].Pos, Row: ordered[i].Row}); c != -1 {
			t.Errorf("the SDK does not order %+v before %+v", ordered[i-1], ordered[i])
		}
	}
	h, _ := sink.Version(envelope.Source{Name: "main", History: "h", File: "other-bin.000001"})
	h2, _ := sink.Version(envelope.Source{Name: "main", History: "h2", File: "mysql-bin.000001"})
	h3, _ := sink.Version(envelope.Source{Name: "replica", History: "h", File: "mysql-bin.000001"})
	h0, _ := sink.Version(ordered[0])
	if h == h0 || h2 == h0 || h3 == h0 {
		t.Errorf("another base name, history or source share a head: %q %q %q %q", h, h2, h3, h0)
	}
}

// ordersChanges is n inserts into shop.orders at pos 100, rows 0..n-1.
func ordersChanges(tab *sink.Table, n int) []*envelope.Envelope {
	var out []*envelope.Envelope
	for i := range n {
		out = append(out, &envelope.Envelope{V: 1, ID: fmt.Sprintf("mysql-bin.000002:100:%d", i),
			Source: envelope.Source{Name: "main", History: "h1", File: "mysql-bin.000002", Pos: 100, Row: i},
			DB:     "shop", Table: "orders", Type: envelope.TypeInsert, PK: []string{"id"},
			After: map[string]json.RawMessage{"id": json.RawMessage(fmt.Sprint(i)), "status": json.RawMessage(`"new"`)}})
	}
	return out
}

func TestProgressGoesWithTheLastCall(t *testing.T) {
	tab := &sink.Table{DB: "shop", Name: "orders", PK: []string{"id"}, Columns: []sink.Column{{Name: "id"}, {Name: "status"}}}
	kp, _ := parseKeyPattern(DefaultKeyPattern)
	s := &Sink{keys: kp, cfg: Config{MaxCallChanges: 3, MaxCallBytes: DefaultMaxCallBytes, VersionField: DefaultVersionField,
		ProgressPrefix: DefaultProgressPrefix, TombstonePrefix: DefaultTombstonePrefix, TombstoneTTL: DefaultTombstoneTTL}}
	changes := ordersChanges(tab, 10)
	// An update moving a row is two operations; they stay in one call.
	changes[5].Type, changes[5].Before = envelope.TypeUpdate, map[string]json.RawMessage{"id": json.RawMessage("50")}
	calls, err := s.encode(sink.Batch{Table: tab, Changes: changes, Key: "k"}, []byte(`{"last":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 4 {
		t.Fatalf("10 changes in calls of 3: %d calls", len(calls))
	}
	total := 0
	for i, c := range calls {
		total += c.changes
		last := i == len(calls)-1
		if (c.args[3] == "1") != last || (last && string(c.args[4].([]byte)) != `{"last":{}}`) {
			t.Errorf("call %d of %d: progress flag %v, progress %v", i+1, len(calls), c.args[3], c.args[4])
		}
		if c.keys[0] != "dbsync:sync:progress:k" {
			t.Errorf("call %d: KEYS[1] = %q", i+1, c.keys[0])
		}
	}
	if total != 10 || calls[1].changes != 3 || len(calls[1].keys) != 1+2*4 {
		t.Errorf("changes per call %d %d %d %d, the second's keys %v", calls[0].changes, calls[1].changes, calls[2].changes, calls[3].changes, calls[1].keys)
	}
}

// A crash between two calls of a split batch leaves rows ahead of the
// progress; the SDK hands the batch over again, and its applied part is
// skipped by the rows' versions.
func TestCrashBetweenCallsIsHarmless(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	raw := r.Client(t)
	tab := &sink.Table{DB: "shop", Name: "orders", PK: []string{"id"}, Columns: []sink.Column{{Name: "id"}, {Name: "status"}}}
	s, err := New(ctx, Config{Addr: r.Addr(), MaxCallChanges: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := sink.Batch{Table: tab, Changes: ordersChanges(tab, 10), Key: "k"}
	b.Progress = client.Progress{Last: client.CoordinateOf(b.Changes[9])}
	progress, _ := json.Marshal(b.Progress)
	calls, err := s.encode(b, progress)
	if err != nil || len(calls) != 3 {
		t.Fatalf("encode: %d calls, %v", len(calls), err)
	}
	// The first call only, then the crash.
	if err := applyScript.Run(ctx, s.client, calls[0].keys, calls[0].args...).Err(); err != nil {
		t.Fatal(err)
	}
	if n := raw.Exists(ctx, "dbsync:sync:progress:k").Val(); n != 0 {
		t.Fatalf("the first call stored the progress")
	}
	if _, ok, _ := s.Dedup().Load(ctx, "k"); ok {
		t.Fatalf("Load finds a progress after the first call")
	}
	raw.HSet(ctx, "shop:orders:0", "mark", "left alone")
	if err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := raw.HGet(ctx, "shop:orders:0", "mark").Val(); got != "left alone" {
		t.Errorf("the batch handed over again rewrote a row of its applied part")
	}
	if n := len(raw.Keys(ctx, "shop:orders:*").Val()); n != 10 {
		t.Errorf("%d rows, want 10", n)
	}
	if p, ok, _ := s.Dedup().Load(ctx, "k"); !ok || p.Last != b.Progress.Last {
		t.Errorf("progress %+v, %t after the batch; want %+v", p, ok, b.Progress)
	}
}
