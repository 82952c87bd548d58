package redissink_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/redissink"
)

func TestApplyInsertUpdateDeleteRead(t *testing.T) {
	g := allTypes(t)
	tab := allTypesTable()
	e := start(t, redissink.Config{}, tab)

	e.apply(t, batch(tab,
		change(tab, envelope.TypeInsert, pos(100, 0), nil, g[0].After),
		change(tab, envelope.TypeInsert, pos(100, 1), nil, g[1].After),
		change(tab, envelope.TypeInsert, pos(100, 2), nil, g[2].After)))
	for i, c := range []at{pos(100, 0), pos(100, 1), pos(100, 2)} {
		key := "shop:all_types:" + string(g[i].After["id"])
		if d := diff(e.hash(t, key), want(g[i].After, ver(c))); d != "" {
			t.Errorf("%s after the inserts:\n%s", key, d)
		}
	}

	e.apply(t, batch(tab,
		change(tab, envelope.TypeUpdate, pos(200, 0), g[3].Before, g[3].After),
		change(tab, envelope.TypeDelete, pos(300, 0), g[4].Before, nil),
		change(tab, envelope.TypeInsert, pos(400, 0), nil, g[5].After)))
	if d := diff(e.hash(t, "shop:all_types:1"), want(g[3].After, ver(pos(200, 0)))); d != "" {
		t.Errorf("row 1 after the update:\n%s", d)
	}
	if n := e.raw.Exists(e.ctx, "shop:all_types:2").Val(); n != 0 {
		t.Errorf("row 2 is still there after its delete: %v", e.hash(t, "shop:all_types:2"))
	}
	if got := e.raw.Get(e.ctx, "dbsync:sync:deleted:shop:all_types:2").Val(); got != ver(pos(300, 0)) {
		t.Errorf("tombstone of row 2 is %q, want the delete's version %q", got, ver(pos(300, 0)))
	}
	if d := diff(e.hash(t, "shop:all_types:4"), want(g[5].After, ver(pos(400, 0)))); d != "" {
		t.Errorf("row 4 after its insert:\n%s", d)
	}

	// A snapshot row of a row the sink does not have.
	five := maps.Clone(g[0].After)
	five["id"] = json.RawMessage("5")
	e.apply(t, batch(tab, change(tab, envelope.TypeRead, pos(500, 7), nil, five)))
	if d := diff(e.hash(t, "shop:all_types:5"), want(five, ver(pos(500, 7)))); d != "" {
		t.Errorf("row 5 after its snapshot read:\n%s", d)
	}

	// The column g dropped at the source: the next update of row 4 has
	// no g, and neither has the row.
	dropped := &sink.Table{DB: tab.DB, Name: tab.Name, PK: tab.PK, Columns: tab.Columns[:len(tab.Columns)-1]}
	after := maps.Clone(g[5].After)
	delete(after, "g")
	after["vc"] = json.RawMessage(`"after the ALTER"`)
	e.apply(t, batch(dropped, change(dropped, envelope.TypeUpdate, pos(600, 0), g[5].After, after)))
	if d := diff(e.hash(t, "shop:all_types:4"), want(after, ver(pos(600, 0)))); d != "" {
		t.Errorf("row 4 after an update without the dropped column g:\n%s", d)
	}

	rows, err := e.s.Rows(e.ctx, tab)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := map[string]map[string]json.RawMessage{"[1]": g[3].After, "[3]": g[2].After, "[4]": after, "[5]": five}
	if !reflect.DeepEqual(rows, wantRows) {
		t.Errorf("Rows:\n%v\nwant\n%v", rows, wantRows)
	}
}

func TestUpdateChangingThePrimaryKey(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{}, tab)
	one := row("id", "1", "status", `"new"`, "total", `"12.50"`)
	ten := row("id", "10", "status", `"new"`, "total", `"12.50"`)
	e.apply(t, batch(tab, change(tab, envelope.TypeInsert, pos(100, 0), nil, one)))
	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, pos(200, 0), one, ten)))
	if n := e.raw.Exists(e.ctx, "shop:orders:1").Val(); n != 0 {
		t.Errorf("the old key shop:orders:1 is still there after the update that moved the row to id 10")
	}
	if got := e.raw.Get(e.ctx, "dbsync:sync:deleted:shop:orders:1").Val(); got != ver(pos(200, 0)) {
		t.Errorf("tombstone of the old key: %q, want %q", got, ver(pos(200, 0)))
	}
	if d := diff(e.hash(t, "shop:orders:10"), want(ten, ver(pos(200, 0)))); d != "" {
		t.Errorf("the new key:\n%s", d)
	}

	// The insert of id 1 replayed: the moved row does not come back.
	e.apply(t, batch(tab, change(tab, envelope.TypeInsert, pos(100, 0), nil, one)))
	if n := e.raw.Exists(e.ctx, "shop:orders:1").Val(); n != 0 {
		t.Errorf("a replayed insert brought back the key the row left: %v", e.hash(t, "shop:orders:1"))
	}

	// Moved back, in one batch with a change of the new key.
	back := row("id", "1", "status", `"paid"`, "total", `"12.50"`)
	e.apply(t, batch(tab,
		change(tab, envelope.TypeUpdate, pos(300, 0), ten, back),
		change(tab, envelope.TypeInsert, pos(300, 1), nil, ten)))
	if d := diff(e.hash(t, "shop:orders:1"), want(back, ver(pos(300, 0)))); d != "" {
		t.Errorf("shop:orders:1 after the row moved back:\n%s", d)
	}
	if n := e.raw.Exists(e.ctx, "dbsync:sync:deleted:shop:orders:1").Val(); n != 0 {
		t.Errorf("the tombstone of shop:orders:1 is left after the row came back")
	}
	if d := diff(e.hash(t, "shop:orders:10"), want(ten, ver(pos(300, 1)))); d != "" {
		t.Errorf("shop:orders:10 inserted again after the move:\n%s", d)
	}
}

func TestReplayedBatchChangesNothing(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{TTL: time.Hour}, tab)
	b := batch(tab,
		change(tab, envelope.TypeInsert, pos(100, 0), nil, row("id", "1", "status", `"new"`, "total", `"1.00"`)),
		change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "2", "status", `"new"`, "total", `"2.00"`)),
		change(tab, envelope.TypeUpdate, pos(200, 0), row("id", "1", "status", `"new"`, "total", `"1.00"`), row("id", "1", "status", `"paid"`, "total", `"1.00"`)),
		change(tab, envelope.TypeDelete, pos(300, 0), row("id", "2", "status", `"new"`, "total", `"2.00"`), nil),
		change(tab, envelope.TypeInsert, pos(400, 0), nil, row("id", "3", "status", `"new"`, "total", `"3.00"`)))
	e.apply(t, b)
	// Marks a write would undo: a field no change has, TTLs removed.
	for _, k := range []string{"shop:orders:1", "shop:orders:3"} {
		e.raw.HSet(e.ctx, k, "mark", "left alone")
		e.raw.Persist(e.ctx, k)
	}
	e.raw.Persist(e.ctx, "dbsync:sync:deleted:shop:orders:2")
	before := e.state(t)
	if len(before) != 4 {
		t.Fatalf("after the batch the server holds %v, want rows 1 and 3, the tombstone of 2 and the progress", before)
	}

	e.apply(t, b)
	if d := diff(e.state(t), before); d != "" {
		t.Errorf("the replayed batch changed the server:\n%s", d)
	}
	// Its changes one by one, each in a batch of its own.
	for _, c := range b.Changes {
		e.apply(t, batch(tab, c))
	}
	got := e.state(t)
	delete(got, "dbsync:sync:progress:dbsync.shop.orders")
	delete(before, "dbsync:sync:progress:dbsync.shop.orders")
	if d := diff(got, before); d != "" {
		t.Errorf("the replayed changes changed the rows:\n%s", d)
	}
}

func TestOlderChangeLeavesTheRow(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{}, tab)
	newer := row("id", "1", "status", `"paid"`, "total", `"1.00"`)
	e.apply(t, batch(tab,
		change(tab, envelope.TypeInsert, pos(100, 0), nil, row("id", "1", "status", `"new"`, "total", `"1.00"`)),
		change(tab, envelope.TypeUpdate, pos(500, 1), row("id", "1", "status", `"new"`, "total", `"1.00"`), newer),
		change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "2", "status", `"new"`, "total", `"2.00"`)),
		change(tab, envelope.TypeDelete, pos(600, 0), row("id", "2", "status", `"new"`, "total", `"2.00"`), nil)))

	for _, tc := range []struct {
		name string
		c    *envelope.Envelope
	}{
		{"a snapshot row read before the update", change(tab, envelope.TypeRead, pos(400, 0), nil, row("id", "1", "status", `"snapshot"`, "total", `"1.00"`))},
		{"an update before it in the same event", change(tab, envelope.TypeUpdate, pos(500, 0), newer, row("id", "1", "status", `"older"`, "total", `"1.00"`))},
		{"the same change", change(tab, envelope.TypeUpdate, pos(500, 1), newer, row("id", "1", "status", `"other"`, "total", `"1.00"`))},
		{"a delete before it", change(tab, envelope.TypeDelete, pos(450, 0), newer, nil)},
		{"an insert replayed after the row's delete", change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "2", "status", `"new"`, "total", `"2.00"`))},
		{"a snapshot row read before the row's delete", change(tab, envelope.TypeRead, pos(599, 99), nil, row("id", "2", "status", `"snapshot"`, "total", `"2.00"`))},
	} {
		before := e.state(t)
		e.apply(t, batch(tab, tc.c))
		after := e.state(t)
		delete(before, "dbsync:sync:progress:dbsync.shop.orders")
		delete(after, "dbsync:sync:progress:dbsync.shop.orders")
		if d := diff(after, before); d != "" {
			t.Errorf("%s changed the rows:\n%s", tc.name, d)
		}
	}
	if d := diff(e.hash(t, "shop:orders:1"), want(newer, ver(pos(500, 1)))); d != "" {
		t.Errorf("row 1:\n%s", d)
	}

	// Binlog file numbers compare as numbers: mysql-bin.1000000 is after
	// mysql-bin.999999.
	late := at{history: "h1", file: "mysql-bin.999999", pos: 9000}
	later := at{history: "h1", file: "mysql-bin.1000000", pos: 4}
	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, late, newer, row("id", "1", "status", `"999999"`, "total", `"1.00"`))))
	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, later, newer, row("id", "1", "status", `"1000000"`, "total", `"1.00"`))))
	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, at{history: "h1", file: "mysql-bin.999999", pos: 9999}, newer, row("id", "1", "status", `"999999 again"`, "total", `"1.00"`))))
	if got := e.hash(t, "shop:orders:1")["status"]; got != `"1000000"` {
		t.Errorf("row 1's status is %s, want the change of mysql-bin.1000000's", got)
	}
}

func TestOtherHistoryIsApplied(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{}, tab)
	e.apply(t, batch(tab,
		change(tab, envelope.TypeInsert, pos(9000, 0), nil, row("id", "1", "status", `"h1"`, "total", `"1.00"`)),
		change(tab, envelope.TypeDelete, pos(9001, 0), row("id", "2", "status", `"h1"`, "total", `"1.00"`), nil)))
	h2 := at{history: "h2", file: "mysql-bin.000001", pos: 4}
	one := row("id", "1", "status", `"h2"`, "total", `"1.00"`)
	two := row("id", "2", "status", `"h2"`, "total", `"2.00"`)
	e.apply(t, batch(tab,
		change(tab, envelope.TypeUpdate, h2, one, one),
		change(tab, envelope.TypeInsert, at{history: "h2", file: "mysql-bin.000001", pos: 4, row: 1}, nil, two)))
	if d := diff(e.hash(t, "shop:orders:1"), want(one, ver(h2))); d != "" {
		t.Errorf("row 1 after a change of history h2 at a lower coordinate:\n%s", d)
	}
	if d := diff(e.hash(t, "shop:orders:2"), want(two, ver(at{history: "h2", file: "mysql-bin.000001", pos: 4, row: 1}))); d != "" {
		t.Errorf("row 2, deleted in h1, inserted in h2:\n%s", d)
	}
}

func TestTTL(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{TTL: time.Hour, TombstoneTTL: 2 * time.Hour}, tab)
	between := func(what, key string, lo, hi time.Duration) {
		t.Helper()
		if got := e.raw.PTTL(e.ctx, key).Val(); got < lo || got > hi {
			t.Errorf("%s: %s expires in %s, want between %s and %s", what, key, got, lo, hi)
		}
	}
	r := row("id", "1", "status", `"new"`, "total", `"1.00"`)
	e.apply(t, batch(tab, change(tab, envelope.TypeInsert, pos(100, 0), nil, r)))
	between("after the insert", "shop:orders:1", 59*time.Minute, time.Hour)
	e.raw.Persist(e.ctx, "shop:orders:1")
	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, pos(200, 0), r, r)))
	between("after an update", "shop:orders:1", 59*time.Minute, time.Hour)
	e.apply(t, batch(tab, change(tab, envelope.TypeDelete, pos(300, 0), r, nil)))
	between("tombstone", "dbsync:sync:deleted:shop:orders:1", 119*time.Minute, 2*time.Hour)
	if got := e.raw.PTTL(e.ctx, "dbsync:sync:progress:dbsync.shop.orders").Val(); got >= 0 {
		t.Errorf("the progress key expires (PTTL %s)", got)
	}

	// Defaults: rows do not expire, tombstones after 24h.
	d := startOn(t, e.r, redissink.Config{DB: 1}, tab)
	d.apply(t, batch(tab, change(tab, envelope.TypeInsert, pos(100, 0), nil, r), change(tab, envelope.TypeDelete, pos(100, 1), row("id", "2"), nil)))
	c := redisOnDB(t, d, 1)
	if got := c.PTTL(d.ctx, "shop:orders:1").Val(); got >= 0 {
		t.Errorf("default: the row expires (PTTL %s), want no expiry", got)
	}
	if got := c.PTTL(d.ctx, "dbsync:sync:deleted:shop:orders:2").Val(); got < 23*time.Hour+59*time.Minute || got > 24*time.Hour {
		t.Errorf("default: the tombstone expires in %s, want 24h", got)
	}
}

func TestProgressIsStoredWithTheRows(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{}, tab)
	dedup := e.s.Dedup()
	if p, ok, err := dedup.Load(e.ctx, "dbsync.shop.orders"); err != nil || ok {
		t.Fatalf("Load before any Apply: %+v, %t, %v; want ok=false", p, ok, err)
	}
	b := batch(tab,
		change(tab, envelope.TypeInsert, pos(100, 0), nil, row("id", "1", "status", `"new"`, "total", `"1.00"`)),
		change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "2", "status", `"new"`, "total", `"1.00"`)))
	b.Progress.Gaps = []client.Gap{{After: client.Coordinate{File: "mysql-bin.000001", Pos: 4}, Before: b.Progress.Last}}
	b.Progress.GTIDs = "0-1-42"
	b.Progress.Tx, b.Progress.TxRows = "0-1-42", 2
	e.apply(t, b)
	p, ok, err := dedup.Load(e.ctx, "dbsync.shop.orders")
	if err != nil || !ok {
		t.Fatalf("Load after Apply: %t, %v", ok, err)
	}
	if !reflect.DeepEqual(p, b.Progress) {
		t.Errorf("Load after Apply:\n%+v\nwant what Apply stored:\n%+v", p, b.Progress)
	}
	if raw, _ := json.Marshal(b.Progress); e.raw.Get(e.ctx, "dbsync:sync:progress:dbsync.shop.orders").Val() != string(raw) {
		t.Errorf("progress key holds %s, want %s", e.raw.Get(e.ctx, "dbsync:sync:progress:dbsync.shop.orders").Val(), raw)
	}

	// An empty batch stores its progress.
	empty := batch(tab)
	empty.Key = "dbsync.shop.orders.p1"
	empty.Progress = client.Progress{Last: client.Coordinate{File: "mysql-bin.000009", Pos: 77}}
	e.apply(t, empty)
	if p, ok, _ := dedup.Load(e.ctx, empty.Key); !ok || !reflect.DeepEqual(p, empty.Progress) {
		t.Errorf("after an empty batch Load gives %+v, %t; want %+v", p, ok, empty.Progress)
	}

	// Save and Load, with another prefix.
	other := startOn(t, e.r, redissink.Config{ProgressPrefix: "elsewhere:"}, tab)
	if err := other.s.Dedup().Save(e.ctx, "subj", b.Progress); err != nil {
		t.Fatal(err)
	}
	if p, ok, err := other.s.Dedup().Load(e.ctx, "subj"); err != nil || !ok || !reflect.DeepEqual(p, b.Progress) {
		t.Errorf("Load after Save: %+v, %t, %v", p, ok, err)
	}
	if e.raw.Exists(e.ctx, "elsewhere:subj").Val() != 1 {
		t.Errorf("Save with ProgressPrefix \"elsewhere:\" did not write elsewhere:subj")
	}
	if err := other.s.Dedup().Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.s.Ping(e.ctx); err != nil {
		t.Errorf("the dedup store's Close closed the sink: %v", err)
	}
}

func TestLargeBatchIsSplit(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{MaxCallChanges: 3}, tab)
	var changes []*envelope.Envelope
	for i := range 10 {
		id := json.RawMessage([]byte{byte('0' + i)})
		changes = append(changes, change(tab, envelope.TypeInsert, pos(100, i), nil, row("id", string(id), "status", `"new"`, "total", `"1.00"`)))
	}
	b := batch(tab, changes...)
	e.apply(t, b)
	rows, err := e.s.Rows(e.ctx, tab)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 10 {
		t.Errorf("Rows after a batch of 10 in calls of 3: %d rows, want 10", len(rows))
	}
	if p, ok, _ := e.s.Dedup().Load(e.ctx, b.Key); !ok || !reflect.DeepEqual(p, b.Progress) {
		t.Errorf("progress %+v, %t; want %+v", p, ok, b.Progress)
	}

	// A byte bound too: one change per call.
	f := startOn(t, e.r, redissink.Config{MaxCallBytes: 1, KeyPattern: "small:{pk}"}, tab)
	f.apply(t, b)
	if n := len(f.raw.Keys(f.ctx, "small:*").Val()); n != 10 {
		t.Errorf("with MaxCallBytes 1: %d rows, want 10", n)
	}
}

func TestKeyPatterns(t *testing.T) {
	pairs := &sink.Table{DB: "shop", Name: "pairs", PK: []string{"a", "b"}, Columns: []sink.Column{{Name: "a"}, {Name: "b"}, {Name: "v"}}}
	events := &sink.Table{DB: "shop", Name: "events", PK: []string{"at"}, Columns: []sink.Column{{Name: "at"}, {Name: "v"}}}
	odd := &sink.Table{DB: "we:ird", Name: `ta\ble`, PK: []string{"id"}, Columns: []sink.Column{{Name: "id"}}}
	pair := row("a", `"x:y\\z"`, "b", "7", "v", "1")
	event := row("at", `"2026-11-21T12:34:56"`, "v", "2")

	e := start(t, redissink.Config{}, pairs, events, odd)
	e.apply(t, batch(pairs, change(pairs, envelope.TypeInsert, pos(1, 0), nil, pair)))
	e.apply(t, batch(events, change(events, envelope.TypeInsert, pos(1, 0), nil, event)))
	e.apply(t, batch(odd, change(odd, envelope.TypeInsert, pos(1, 0), nil, row("id", "3"))))
	for _, k := range []string{`shop:pairs:x\:y\\z:7`, `shop:events:2026-11-21T12:34:56`, `we\:ird:ta\\ble:3`} {
		if e.raw.Exists(e.ctx, k).Val() != 1 {
			t.Errorf("no key %s; the server has %v", k, e.raw.Keys(e.ctx, "*").Val())
		}
	}

	c := startOn(t, e.r, redissink.Config{KeyPattern: "cache/{table}@{db}/{pk}", DB: 2}, pairs, events)
	c.apply(t, batch(pairs, change(pairs, envelope.TypeInsert, pos(1, 0), nil, pair)))
	c.apply(t, batch(events, change(events, envelope.TypeInsert, pos(1, 0), nil, event)))
	c.apply(t, batch(events, change(events, envelope.TypeDelete, pos(2, 0), event, nil)))
	raw := redisOnDB(t, c, 2)
	keys := raw.Keys(c.ctx, "*").Val()
	wantKeys := []string{`cache/pairs@shop/x\:y\\z:7`, "dbsync:sync:deleted:cache/events@shop/2026-11-21T12:34:56",
		"dbsync:sync:progress:dbsync.shop.events", "dbsync:sync:progress:dbsync.shop.pairs"}
	if strings.Join(sorted(keys), " ") != strings.Join(wantKeys, " ") {
		t.Errorf("keys with pattern cache/{table}@{db}/{pk}: %v, want %v", sorted(keys), wantKeys)
	}
	rows, err := c.s.Rows(c.ctx, pairs)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]map[string]json.RawMessage{`["x:y\\z",7]`: pair}; !reflect.DeepEqual(rows, want) {
		t.Errorf("Rows of pairs: %v, want %v", rows, want)
	}
}

func TestTypedFields(t *testing.T) {
	g := allTypes(t)
	tab := allTypesTable()
	e := start(t, redissink.Config{Fields: redissink.FieldsTyped}, tab)
	e.apply(t, batch(tab,
		change(tab, envelope.TypeInsert, pos(100, 0), nil, g[0].After),
		change(tab, envelope.TypeInsert, pos(100, 1), nil, g[1].After),
		change(tab, envelope.TypeInsert, pos(100, 2), nil, g[2].After)))
	got := e.hash(t, "shop:all_types:1")
	for col, w := range map[string]string{
		"id": "1", "bi": "-9223372036854775808", "biu": "18446744073709551615", "flag": "1",
		"dec1": "12.50", "dec2": "-12345678901234567890123456789012345.123456789012345678901234567890",
		"f": "1.5", "d": "-2.718281828459045", "b64": "18446744073709551615",
		"c": "abc", "vc": "日本語 😀 Ünïcødé \"quoted\" \\ back\nslash", "lat": "café €",
		"bin": "AP8BAg==", "lb": "", "j": `{"a":[1,2.5,"x"],"b":null,"c":{"d":true}}`,
		"dt": "2026-11-21", "tm": "-838:59:59", "yr": "2026", "dtm6": "2026-11-21T12:34:56.123456",
		"ts": "2026-11-21T04:34:56Z", "e": "medium", "st": `["red","blue"]`, "g": "AAAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA==",
		"_dbsync": ver(pos(100, 0)),
	} {
		if got[col] != w {
			t.Errorf("typed %s: %q, want %q", col, got[col], w)
		}
	}
	if len(got) != len(g[0].After)+1 {
		t.Errorf("row 1 has %d fields, want its %d columns and the version", len(got), len(g[0].After))
	}
	if d := diff(e.hash(t, "shop:all_types:2"), map[string]string{"id": "2", "_dbsync": ver(pos(100, 1))}); d != "" {
		t.Errorf("row 2 (all null): null columns are absent fields:\n%s", d)
	}
	three := e.hash(t, "shop:all_types:3")
	for col, w := range map[string]string{"vc": "", "j": "[]", "st": "[]", "dt": "0000-00-00", "dtm6": "0000-00-00 00:00:00.000000", "bi": "0"} {
		if three[col] != w {
			t.Errorf("row 3 typed %s: %q, want %q", col, three[col], w)
		}
	}

	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, pos(200, 0), g[3].Before, g[3].After)))
	if got := e.hash(t, "shop:all_types:1")["j"]; got != "just a string" {
		t.Errorf("a JSON column holding a string, typed: %q, want its content", got)
	}
	// A minimal image: set a column to null, and one to a value.
	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, pos(300, 0), row("id", "1"), row("c", "null", "vc", `"minimal"`))))
	one := e.hash(t, "shop:all_types:1")
	if _, ok := one["c"]; ok || one["vc"] != "minimal" || one["t"] != "text" || one["id"] != "1" {
		t.Errorf("after a minimal update setting c to null and vc: c %q (want absent), vc %q, t %q, id %q", one["c"], one["vc"], one["t"], one["id"])
	}
	if _, err := e.s.Rows(e.ctx, tab); err == nil {
		t.Errorf("Rows of a typed sink: no error")
	}
}

func TestMinimalRowImagesAreMerged(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{}, tab)
	e.apply(t, batch(tab, change(tab, envelope.TypeInsert, pos(100, 0), nil, row("id", "7", "status", `"new"`, "total", `"12.50"`))))
	// binlog_row_image=MINIMAL: before holds the key, after the changed columns.
	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, pos(200, 0), row("id", "7"), row("status", `"paid"`))))
	if d := diff(e.hash(t, "shop:orders:7"), map[string]string{"id": "7", "status": `"paid"`, "total": `"12.50"`, "_dbsync": ver(pos(200, 0))}); d != "" {
		t.Errorf("after a minimal update:\n%s", d)
	}
	// A minimal update of a row the sink does not have gets its key columns.
	e.apply(t, batch(tab, change(tab, envelope.TypeUpdate, pos(300, 0), row("id", "8"), row("status", `"paid"`))))
	if d := diff(e.hash(t, "shop:orders:8"), map[string]string{"id": "8", "status": `"paid"`, "_dbsync": ver(pos(300, 0))}); d != "" {
		t.Errorf("a minimal update of a missing row:\n%s", d)
	}
}

func TestPrepareRefusesWhatItCannotKeep(t *testing.T) {
	e := start(t, redissink.Config{})
	nopk := &sink.Table{DB: "shop", Name: "log", Columns: []sink.Column{{Name: "msg"}}}
	err := e.s.Prepare(e.ctx, nopk)
	if err == nil || !strings.Contains(err.Error(), "shop.log has no primary key") || !strings.Contains(err.Error(), "ADD PRIMARY KEY") {
		t.Errorf("Prepare of a table without a primary key: %v; want an error saying so and the fix", err)
	}
	if err := e.s.Apply(e.ctx, batch(nopk, change(nopk, envelope.TypeInsert, pos(1, 0), nil, row("msg", `"x"`)))); err == nil {
		t.Errorf("Apply to a table without a primary key: no error")
	}
	clash := &sink.Table{DB: "shop", Name: "meta", PK: []string{"id"}, Columns: []sink.Column{{Name: "id"}, {Name: "_DBSYNC"}}}
	if err := e.s.Prepare(e.ctx, clash); err == nil || !strings.Contains(err.Error(), "VersionField") {
		t.Errorf("Prepare of a table with a column _DBSYNC: %v; want an error naming Config.VersionField", err)
	}
	if len(e.raw.Keys(e.ctx, "*").Val()) != 0 {
		t.Errorf("refused tables wrote keys: %v", e.raw.Keys(e.ctx, "*").Val())
	}
}

func TestChangesItCannotWriteWriteNothing(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{}, tab)
	good := change(tab, envelope.TypeInsert, pos(100, 0), nil, row("id", "1", "status", `"new"`))
	for _, tc := range []struct {
		name, want string
		c          *envelope.Envelope
		schema     bool
	}{
		{"another primary key", `primary key [code]`, func() *envelope.Envelope {
			c := change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "2"))
			c.PK = []string{"code"}
			return c
		}(), true},
		{"no key column", `primary key column "id" is not in the change's row image`, change(tab, envelope.TypeInsert, pos(100, 1), nil, row("status", `"x"`)), true},
		{"a column named like the version field", `"_dbsync"`, change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "2", "_dbsync", "1")), true},
		{"a null key", `primary key column "id" is null`, change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "null")), false},
		{"another table", `in a batch of table shop.orders`, func() *envelope.Envelope {
			c := change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "2"))
			c.Table = "other"
			return c
		}(), false},
	} {
		err := e.s.Apply(e.ctx, batch(tab, good, tc.c))
		var se *sink.SchemaChangeError
		switch {
		case err == nil:
			t.Errorf("%s: no error", tc.name)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v; want it to say %s", tc.name, err, tc.want)
		case tc.schema && !asSchemaChange(err, &se):
			t.Errorf("%s: %v is not a *sink.SchemaChangeError", tc.name, err)
		}
		if keys := e.raw.Keys(e.ctx, "*").Val(); len(keys) != 0 {
			t.Errorf("%s: the failed batch wrote %v", tc.name, keys)
		}
	}

	// A key of the pattern another program holds as a string: nothing of
	// the batch is written, not even the rows before it.
	e.raw.Set(e.ctx, "shop:orders:2", "not a row", 0)
	err := e.s.Apply(e.ctx, batch(tab, good, change(tab, envelope.TypeInsert, pos(100, 1), nil, row("id", "2"))))
	if err == nil || !strings.Contains(err.Error(), "shop:orders:2 is not a row hash") {
		t.Errorf("Apply over a string key: %v; want an error naming the key", err)
	}
	if keys := e.raw.Keys(e.ctx, "*").Val(); len(keys) != 1 {
		t.Errorf("the failed batch wrote: %v", keys)
	}
}

func TestScriptFlushedFallsBackToEval(t *testing.T) {
	tab := ordersTable()
	e := start(t, redissink.Config{}, tab)
	if err := e.raw.ScriptFlush(e.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	e.apply(t, batch(tab, change(tab, envelope.TypeInsert, pos(100, 0), nil, row("id", "1"))))
	if e.raw.Exists(e.ctx, "shop:orders:1").Val() != 1 {
		t.Errorf("row not written after SCRIPT FLUSH")
	}
}

func TestPingAndClose(t *testing.T) {
	e := start(t, redissink.Config{})
	if err := e.s.Ping(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Ping(e.ctx); err == nil {
		t.Errorf("Ping after Close: no error")
	}
}

func TestSameRowTwiceInABatch(t *testing.T) {
	tab := &sink.Table{DB: "shop", Name: "orders", PK: []string{"id"}, Columns: []sink.Column{{Name: "id"}, {Name: "status"}}}
	e := start(t, redissink.Config{}, tab)
	full := row("id", "5", "status", `"new"`, "total", `"1.00"`)
	e.apply(t, batch(tab,
		change(tab, envelope.TypeInsert, pos(100, 0), nil, full),
		change(tab, envelope.TypeDelete, pos(100, 1), full, nil),
		change(tab, envelope.TypeInsert, pos(100, 2), nil, row("id", "5", "status", `"again"`)),
		change(tab, envelope.TypeInsert, pos(100, 3), nil, row("id", "6", "status", `"new"`, "total", `"2.00"`)),
		change(tab, envelope.TypeRead, pos(100, 4), nil, row("id", "6", "status", `"read"`))))
	if n := e.raw.Exists(e.ctx, "dbsync:sync:deleted:shop:orders:5").Val(); n != 0 {
		t.Errorf("the tombstone of row 5 is left after its insert later in the batch")
	}
	if d := diff(e.hash(t, "shop:orders:5"), map[string]string{"id": "5", "status": `"again"`, "_dbsync": ver(pos(100, 2))}); d != "" {
		t.Errorf("row 5, inserted, deleted and inserted again:\n%s", d)
	}
	if d := diff(e.hash(t, "shop:orders:6"), map[string]string{"id": "6", "status": `"read"`, "_dbsync": ver(pos(100, 4))}); d != "" {
		t.Errorf("row 6, inserted with total, then replaced without it:\n%s", d)
	}
}
