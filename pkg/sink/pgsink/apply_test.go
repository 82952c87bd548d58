package pgsink_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/pgsink"
)

// TestApplyOrderInOneBatch applies inserts, updates (one changing the
// key), deletes and re-inserts of the same rows in one batch: the last
// change of each row wins.
func TestApplyOrderInOneBatch(t *testing.T) {
	t.Parallel()
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)
	tbl := kvTable()
	const I, U, D, R = envelope.TypeInsert, envelope.TypeUpdate, envelope.TypeDelete, envelope.TypeRead
	b := batch(tbl,
		change(t, tbl, R, 10, "", `{"id":1,"v":"a"}`),
		change(t, tbl, I, 20, "", `{"id":2,"v":"b"}`),
		change(t, tbl, U, 30, `{"id":1,"v":"a"}`, `{"id":1,"v":"a2"}`),
		change(t, tbl, U, 40, `{"id":2,"v":"b"}`, `{"id":3,"v":"b"}`), // key 2 → 3
		change(t, tbl, D, 50, `{"id":1,"v":"a2"}`, ""),
		change(t, tbl, I, 60, "", `{"id":1,"v":"again"}`),
		change(t, tbl, U, 70, `{"id":3}`, `{"v":"c"}`), // a minimal image: key in before only
		change(t, tbl, I, 80, "", `{"id":4,"v":"d"}`),
		change(t, tbl, D, 90, `{"id":4,"v":"d"}`, ""),
		change(t, tbl, U, 100, `{"id":5,"v":null}`, `{"id":5,"v":"upserted"}`), // an update of a row the target lacks
		change(t, tbl, U, 110, `{"id":3,"v":"c"}`, `{"id":2,"v":"c"}`),         // key 3 → 2 again
	)
	if err := s.Apply(ctx, b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := map[string]string{
		"[1]": `{"id":1,"v":"again"}`,
		"[2]": `{"id":2,"v":"c"}`,
		"[5]": `{"id":5,"v":"upserted"}`,
	}
	wantRows(t, s, tbl, want)

	// The same batch again (the SDK hands a batch over again when its
	// progress was not stored): nothing changes.
	if err := s.Apply(ctx, b); err != nil {
		t.Fatalf("Apply again: %v", err)
	}
	wantRows(t, s, tbl, want)

	// A later change, then older ones arriving late: a row keeps its newest
	// version, a deleted row stays deleted (its tombstone), a re-inserted
	// one is not deleted by the older delete.
	if err := s.Apply(ctx, batch(tbl, change(t, tbl, U, 200, `{"id":2,"v":"c"}`, `{"id":2,"v":"newest"}`))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want["[2]"] = `{"id":2,"v":"newest"}`
	late := batch(tbl,
		change(t, tbl, U, 40, `{"id":2,"v":"b"}`, `{"id":3,"v":"b"}`),
		change(t, tbl, I, 80, "", `{"id":4,"v":"d"}`),
		change(t, tbl, D, 50, `{"id":1,"v":"a2"}`, ""),
		change(t, tbl, U, 70, `{"id":3}`, `{"v":"c"}`),
	)
	if err := s.Apply(ctx, late); err != nil {
		t.Fatalf("Apply late changes: %v", err)
	}
	wantRows(t, s, tbl, want)

	// A change of another binlog history (RESET MASTER: the SDK reported
	// it and handed it over) is applied whatever its position.
	other := change(t, tbl, U, 4, `{"id":2,"v":"newest"}`, `{"id":2,"v":"other history"}`)
	other.Source.History = "h2"
	if err := s.Apply(ctx, batch(tbl, other)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want["[2]"] = `{"id":2,"v":"other history"}`
	wantRows(t, s, tbl, want)
}

// TestFailedBatchStoresNothing applies a batch whose middle change holds a
// value PostgreSQL refuses: neither its rows nor its progress are stored,
// and the error names the change. Then a good batch stores both, and
// they survive a crash of the server.
func TestFailedBatchStoresNothing(t *testing.T) {
	t.Parallel()
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)
	tbl := &sink.Table{DB: "shop", Name: "small", PK: []string{"id"}, Columns: []sink.Column{
		{Name: "id", DataType: "int", ColumnType: "int(11)"},
		{Name: "n", DataType: "tinyint", ColumnType: "tinyint(4)", Nullable: true},
		{Name: "s", DataType: "varchar", ColumnType: "varchar(10)", Nullable: true},
	}}
	bad := change(t, tbl, envelope.TypeInsert, 20, "", `{"id":2,"n":100000,"s":"x"}`) // out of smallint's range
	b := batch(tbl,
		change(t, tbl, envelope.TypeInsert, 10, "", `{"id":1,"n":1,"s":"x"}`),
		bad,
		change(t, tbl, envelope.TypeInsert, 30, "", `{"id":3,"n":3,"s":"x"}`),
	)
	err := s.Apply(ctx, b)
	if err == nil || !strings.Contains(err.Error(), bad.ID) || !strings.Contains(err.Error(), "shop.small") {
		t.Fatalf("Apply with a value PostgreSQL refuses: %v; want an error naming the table and change %s", err, bad.ID)
	}
	var sce *sink.SchemaChangeError
	if errors.As(err, &sce) || failure.IsPermanent(err) {
		t.Errorf("Apply error %v is a schema change or permanent, want transient", err)
	}
	wantRows(t, s, tbl, map[string]string{})
	if _, ok, err := s.Dedup().Load(ctx, b.Key); ok || err != nil {
		t.Fatalf("progress after the failed batch: ok=%v, %v; want none", ok, err)
	}

	// A text with a NUL character is refused before anything is sent,
	// permanently, with the fix.
	nul := change(t, tbl, envelope.TypeInsert, 25, "", `{"id":2,"n":2,"s":"a\u0000b"}`)
	err = s.Apply(ctx, batch(tbl, b.Changes[0], nul))
	if !failure.IsPermanent(err) || failure.Fix(err) == "" || !strings.Contains(err.Error(), `column "s"`) || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("Apply of a NUL character: %v (fix %q); want a permanent error naming column s, with a fix", err, failure.Fix(err))
	}
	wantRows(t, s, tbl, map[string]string{})

	b.Changes[1] = change(t, tbl, envelope.TypeInsert, 20, "", `{"id":2,"n":-128,"s":null}`)
	if err := s.Apply(ctx, b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := map[string]string{
		"[1]": `{"id":1,"n":1,"s":"x"}`,
		"[2]": `{"id":2,"n":-128,"s":null}`,
		"[3]": `{"id":3,"n":3,"s":"x"}`,
	}
	wantRows(t, s, tbl, want)
	got, ok, err := s.Dedup().Load(ctx, b.Key)
	if err != nil || !ok || !reflect.DeepEqual(got, b.Progress) {
		t.Fatalf("progress: %+v, %v, %v; want %+v", got, ok, err, b.Progress)
	}

	// A crash loses nothing committed.
	p.Kill(t)
	p.Start(t)
	s = newSink(t, p, pgsink.Config{})
	wantRows(t, s, tbl, want)
	if got, ok, err := s.Dedup().Load(ctx, b.Key); err != nil || !ok || !reflect.DeepEqual(got, b.Progress) {
		t.Fatalf("progress after a crash: %+v, %v, %v; want %+v", got, ok, err, b.Progress)
	}
}

// TestDedupRoundTrip saves and loads progress through Dedup, and sees the
// progress Apply stored.
func TestDedupRoundTrip(t *testing.T) {
	t.Parallel()
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)
	d := s.Dedup()
	if _, ok, err := d.Load(ctx, "dbsync.shop.kv"); ok || err != nil {
		t.Fatalf("Load of a new subject: ok=%v, %v; want none", ok, err)
	}
	prog := client.Progress{
		Last:  client.Coordinate{Source: "main", History: "h1", ServerID: 7, File: "mysql-bin.000012", Pos: 4211, Row: 3, GTID: "0-1-42"},
		Gaps:  []client.Gap{{After: client.Coordinate{File: "mysql-bin.000011", Pos: 4}, Before: client.Coordinate{File: "mysql-bin.000012", Pos: 9}}},
		GTIDs: "0-1-42", Tx: "0-1-42", TxRows: 2,
	}
	for range 2 {
		if err := d.Save(ctx, "dbsync.shop.kv", prog); err != nil {
			t.Fatalf("Save: %v", err)
		}
		got, ok, err := d.Load(ctx, "dbsync.shop.kv")
		if err != nil || !ok || !reflect.DeepEqual(got, prog) {
			t.Fatalf("Load: %+v, %v, %v; want %+v", got, ok, err, prog)
		}
		prog.Last.Pos++
	}
	if _, ok, _ := d.Load(ctx, "dbsync.shop.other"); ok {
		t.Fatalf("Load of another subject found a progress")
	}

	tbl := kvTable()
	b := batch(tbl, change(t, tbl, envelope.TypeInsert, 10, "", `{"id":1,"v":"a"}`))
	b.Key = "dbsync.shop.kv"
	if err := s.Apply(ctx, b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, ok, err := d.Load(ctx, b.Key); err != nil || !ok || !reflect.DeepEqual(got, b.Progress) {
		t.Fatalf("Load after Apply: %+v, %v, %v; want %+v", got, ok, err, b.Progress)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Dedup Close: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
