package redissink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/redissink"
	"github.com/dbsync/dbsync/test/testenv"
)

// golden is one change of pkg/binlog/testdata/all_types.golden.json, its
// values compacted the way the producer writes them.
type golden struct {
	Type          string
	Before, After map[string]json.RawMessage
}

// allTypes returns the golden file's changes: inserts of ids 1, 2 (all
// null), 3 (zero dates), an update of 1, a delete of 2, an insert of 4.
func allTypes(t testing.TB) []golden {
	t.Helper()
	data, err := os.ReadFile("../../binlog/testdata/all_types.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw []golden
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	compact := func(m map[string]json.RawMessage) map[string]json.RawMessage {
		if m == nil {
			return nil
		}
		out := make(map[string]json.RawMessage, len(m))
		for k, v := range m {
			var b bytes.Buffer
			if err := json.Compact(&b, v); err != nil {
				t.Fatal(err)
			}
			out[k] = b.Bytes()
		}
		return out
	}
	for i := range raw {
		raw[i].Before, raw[i].After = compact(raw[i].Before), compact(raw[i].After)
	}
	if len(raw) != 6 {
		t.Fatalf("all_types.golden.json has %d changes, the tests expect 6", len(raw))
	}
	return raw
}

// allTypesTable is shop.all_types of pkg/binlog/testdata/all_types.sql.
func allTypesTable() *sink.Table {
	t := &sink.Table{DB: "shop", Name: "all_types", PK: []string{"id"}}
	for _, c := range []string{"id", "ti", "tiu", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu", "flag", "dec1", "dec2",
		"f", "d", "b1", "b64", "c", "vc", "tt", "t", "mt", "lt", "lat", "bin", "vbin", "tb", "bl", "mb", "lb", "j",
		"dt", "tm", "tm6", "yr", "dtm", "dtm6", "ts", "ts6", "e", "st", "g"} {
		t.Columns = append(t.Columns, sink.Column{Name: c})
	}
	return t
}

// ordersTable is a small table: shop.orders (id, status, total).
func ordersTable() *sink.Table {
	return &sink.Table{DB: "shop", Name: "orders", PK: []string{"id"},
		Columns: []sink.Column{{Name: "id"}, {Name: "status"}, {Name: "total"}}}
}

// at is a coordinate of history "h1" in mysql-bin.000002.
type at struct {
	history, file string
	pos           uint32
	row           int
}

func pos(p uint32, row int) at { return at{history: "h1", file: "mysql-bin.000002", pos: p, row: row} }

// change builds an envelope of table t.
func change(t *sink.Table, typ string, c at, before, after map[string]json.RawMessage) *envelope.Envelope {
	e := &envelope.Envelope{
		V: envelope.Version,
		Source: envelope.Source{Name: "main", ServerID: 1, History: c.history, File: c.file, Pos: c.pos, Row: c.row,
			TS: time.Date(2026, 11, 21, 19, 0, 0, 0, time.UTC)},
		DB: t.DB, Table: t.Name, Type: typ, PK: t.PK, Before: before, After: after,
	}
	e.ID = fmt.Sprintf("%s:%d:%d", c.file, c.pos, c.row)
	if typ == envelope.TypeRead {
		e.Source.Snapshot = &envelope.SnapshotRef{ID: "snap-1", Chunk: 1}
	}
	return e
}

// row builds a row image from column, JSON text pairs.
func row(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

// batch is changes of t with the progress the SDK would save after them.
func batch(t *sink.Table, changes ...*envelope.Envelope) sink.Batch {
	b := sink.Batch{Table: t, Changes: changes, Key: "dbsync." + t.DB + "." + t.Name}
	if len(changes) > 0 {
		b.Progress = client.Progress{Last: client.CoordinateOf(changes[len(changes)-1])}
	}
	return b
}

// env is a redis-server with a sink on it and a plain client to look.
type env struct {
	r    *testenv.Redis
	s    *redissink.Sink
	raw  *redis.Client
	ctx  context.Context
	tabs []*sink.Table
}

// start starts redis-server and a sink on it configured as cfg (Addr
// filled in), with t prepared.
func start(t testing.TB, cfg redissink.Config, tables ...*sink.Table) *env {
	t.Helper()
	r := testenv.StartRedis(t)
	return startOn(t, r, cfg, tables...)
}

func startOn(t testing.TB, r *testenv.Redis, cfg redissink.Config, tables ...*sink.Table) *env {
	t.Helper()
	ctx := context.Background()
	cfg.Addr = r.Addr()
	s, err := redissink.New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, tab := range tables {
		if err := s.Prepare(ctx, tab); err != nil {
			t.Fatalf("Prepare %s: %v", tab, err)
		}
	}
	return &env{r: r, s: s, raw: r.Client(t), ctx: ctx, tabs: tables}
}

func (e *env) apply(t testing.TB, b sink.Batch) {
	t.Helper()
	if err := e.s.Apply(e.ctx, b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// hash returns the hash at key (empty when absent).
func (e *env) hash(t testing.TB, key string) map[string]string {
	t.Helper()
	h, err := e.raw.HGetAll(e.ctx, key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	return h
}

// state is every key of the server with its type, value and whether it
// expires: what a change left alone must leave equal.
func (e *env) state(t testing.TB) map[string]string {
	t.Helper()
	keys, err := e.raw.Keys(e.ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		typ := e.raw.Type(e.ctx, k).Val()
		var v string
		switch typ {
		case "hash":
			h := e.hash(t, k)
			fields := make([]string, 0, len(h))
			for f, val := range h {
				fields = append(fields, f+"="+val)
			}
			sort.Strings(fields)
			v = fmt.Sprint(fields)
		case "string":
			v = e.raw.Get(e.ctx, k).Val()
		}
		out[k] = fmt.Sprintf("%s %s ttl=%t", typ, v, e.raw.PTTL(e.ctx, k).Val() > 0)
	}
	return out
}

// want is image as the hash fields of "json" form, with the version.
func want(image map[string]json.RawMessage, version string) map[string]string {
	out := map[string]string{"_dbsync": version}
	for k, v := range image {
		out[k] = string(v)
	}
	return out
}

// ver is the version the sink stores for c (source "main").
func ver(c at) string {
	num := "00000000000000000002"
	if c.file != "mysql-bin.000002" {
		var n uint64
		fmt.Sscanf(c.file, "mysql-bin.%d", &n)
		num = fmt.Sprintf("%020d", n)
	}
	return fmt.Sprintf("%s|main|mysql-bin|%s:%010d:%010d", c.history, num, c.pos, c.row)
}

// diff reports the differences between two string maps.
func diff(got, want map[string]string) string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("  %s: missing, want %q", k, w))
		} else if g != w {
			out = append(out, fmt.Sprintf("  %s: %q, want %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("  %s: %q, want absent", k, g))
		}
	}
	sort.Strings(out)
	s := ""
	for _, l := range out {
		s += l + "\n"
	}
	return s
}

// redisOnDB is a plain client of e's server on database db.
func redisOnDB(t testing.TB, e *env, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: e.r.Addr(), DB: db})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func asSchemaChange(err error, target **sink.SchemaChangeError) bool { return errors.As(err, target) }
