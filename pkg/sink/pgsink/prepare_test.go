package pgsink_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/pgsink"
	"github.com/dbsync/dbsync/test/testenv"
)

// schemaChange returns err as a *sink.SchemaChangeError, failing the test
// when it is not one.
func schemaChange(t *testing.T, err error) *sink.SchemaChangeError {
	t.Helper()
	var sce *sink.SchemaChangeError
	if !errors.As(err, &sce) {
		t.Fatalf("error %v is not a *sink.SchemaChangeError", err)
	}
	return sce
}

// TestSchemaChange adds a column at the source: a change carrying it is a
// SchemaChangeError (nothing applied) telling to restart the sync; the
// reloaded table's Prepare names the exact ALTER TABLE, which makes the
// batch go through once run.
func TestSchemaChange(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{NoBinlog: true})
	m.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT NOT NULL PRIMARY KEY, total DECIMAL(10,2) NOT NULL)")
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)
	load := func() *sink.Table {
		tables, err := sink.LoadTables(ctx, m.DB(t), [][2]string{{"shop", "orders"}})
		if err != nil {
			t.Fatalf("LoadTables: %v", err)
		}
		return tables[0]
	}
	tbl := load()
	if err := s.Prepare(ctx, tbl); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := s.Apply(ctx, batch(tbl, change(t, tbl, envelope.TypeInsert, 10, "", `{"id":1,"total":"1.50"}`))); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	m.Exec(t, "ALTER TABLE shop.orders ADD COLUMN note VARCHAR(20) NULL, ADD COLUMN qty SMALLINT UNSIGNED NOT NULL DEFAULT 1")
	b := batch(tbl,
		change(t, tbl, envelope.TypeUpdate, 20, `{"id":1,"total":"1.50"}`, `{"id":1,"total":"2.50"}`),
		change(t, tbl, envelope.TypeInsert, 30, "", `{"id":2,"total":"3.00","note":"hi","qty":2}`),
	)
	err := s.Apply(ctx, b)
	sce := schemaChange(t, err)
	if sce.Table != "shop.orders" || !strings.Contains(sce.What, `"note"`) || !strings.Contains(sce.What, `"qty"`) || !strings.Contains(sce.What, b.Changes[1].ID) ||
		!strings.Contains(sce.Fix, "restart the sync") || !strings.Contains(sce.Fix, `ALTER TABLE "shop"."orders" ADD COLUMN "note"`) {
		t.Fatalf("SchemaChangeError %+v: want table shop.orders, the columns note and qty and the change in What, restart and the ALTER TABLE in Fix", sce)
	}
	wantRows(t, s, tbl, map[string]string{"[1]": `{"id":1,"total":"1.50"}`})
	if _, ok, _ := s.Dedup().Load(ctx, b.Key); !ok {
		t.Fatalf("the progress of the first batch is gone")
	}

	// The restarted sync: the reloaded table does not fit the PostgreSQL
	// table, and Prepare says exactly what to run.
	tbl = load()
	sce = schemaChange(t, s.Prepare(ctx, tbl))
	for _, want := range []string{
		`ALTER TABLE "shop"."orders" ADD COLUMN "note" text;`,
		`ALTER TABLE "shop"."orders" ADD COLUMN "qty" integer;`,
	} {
		if !strings.Contains(sce.Fix, want) {
			t.Errorf("Prepare's fix %q lacks %q", sce.Fix, want)
		}
	}
	if !strings.Contains(sce.What, `column "note" (source type varchar(20)) is missing`) {
		t.Errorf("Prepare's What %q does not name the missing column note and its source type", sce.What)
	}
	conn := p.Conn(t, "target")
	fix := sce.Fix[strings.Index(sce.Fix, "ALTER") : strings.LastIndex(sce.Fix, ";")+1]
	if _, err := conn.Exec(ctx, fix); err != nil {
		t.Fatalf("run the fix %q: %v", fix, err)
	}
	if err := s.Prepare(ctx, tbl); err != nil {
		t.Fatalf("Prepare after the fix: %v", err)
	}
	b.Table = tbl
	if err := s.Apply(ctx, b); err != nil {
		t.Fatalf("Apply after the fix: %v", err)
	}
	wantRows(t, s, tbl, map[string]string{
		"[1]": `{"id":1,"total":"2.50","note":null,"qty":null}`,
		"[2]": `{"id":2,"total":"3.00","note":"hi","qty":2}`,
	})

	// A value that is not its column's form: the source column's type
	// changed (DECIMAL → VARCHAR).
	err = s.Apply(ctx, batch(tbl, change(t, tbl, envelope.TypeInsert, 40, "", `{"id":3,"total":12,"note":null,"qty":1}`)))
	sce = schemaChange(t, err)
	if !strings.Contains(sce.What, `column "total"`) || !strings.Contains(sce.What, "not a string") || !strings.Contains(sce.Fix, "restart the sync") {
		t.Errorf("SchemaChangeError of a number in a DECIMAL column: %+v", sce)
	}

	// A NOT NULL column without a value (the source dropped it, or minimal
	// row images): PostgreSQL refuses the row, nothing is stored.
	err = s.Apply(ctx, batch(tbl,
		change(t, tbl, envelope.TypeInsert, 50, "", `{"id":4,"total":"4.00","note":null,"qty":1}`),
		change(t, tbl, envelope.TypeInsert, 60, "", `{"id":5,"note":null,"qty":1}`)))
	sce = schemaChange(t, err)
	if !strings.Contains(sce.What, `column "total"`) || !strings.Contains(sce.Fix, `ALTER TABLE "shop"."orders" DROP COLUMN "total"`) || !strings.Contains(sce.Fix, "binlog_row_image=FULL") {
		t.Errorf("SchemaChangeError of a missing NOT NULL value: %+v", sce)
	}
	if rows, err := s.Rows(ctx, tbl); err != nil || len(rows) != 2 {
		t.Errorf("rows after the refused batch: %d, %v; want 2", len(rows), err)
	}
}

// TestPrepareChecksExistingTable prepares tables created by hand: a
// compatible one (wider types) is used as it is; an incompatible one is a
// SchemaChangeError listing every problem and its fix.
func TestPrepareChecksExistingTable(t *testing.T) {
	t.Parallel()
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)
	conn := p.Conn(t, "target")
	tbl := &sink.Table{DB: "shop", Name: "items", PK: []string{"id"}, Columns: []sink.Column{
		{Name: "id", DataType: "int", ColumnType: "int(11)"},
		{Name: "price", DataType: "decimal", ColumnType: "decimal(10,2)", Precision: 10, Scale: 2, Nullable: true},
		{Name: "at", DataType: "datetime", ColumnType: "datetime(3)", Precision: 3, Nullable: true},
		{Name: "name", DataType: "varchar", ColumnType: "varchar(10)", Nullable: true},
	}}
	if _, err := conn.Exec(ctx, `CREATE SCHEMA shop;
		CREATE TABLE shop.items (id bigint PRIMARY KEY, price numeric(12,4), at timestamp, name varchar, extra int, _dbsync text)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(ctx, tbl); err != nil {
		t.Fatalf("Prepare of a compatible table: %v", err)
	}
	if err := s.Apply(ctx, batch(tbl, change(t, tbl, envelope.TypeInsert, 10, "", `{"id":1,"price":"9.90","at":"2026-01-02T03:04:05.600","name":"n"}`))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wantRows(t, s, tbl, map[string]string{"[1]": `{"id":1,"price":"9.90","at":"2026-01-02T03:04:05.600","name":"n"}`})

	if _, err := conn.Exec(ctx, `CREATE TABLE shop.bad (id integer NOT NULL, price numeric(10,1), at timestamp(0), name text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	bad := *tbl
	bad.Name = "bad"
	sce := schemaChange(t, s.Prepare(ctx, &bad))
	for _, want := range []string{
		`ALTER TABLE "shop"."bad" ALTER COLUMN "price" TYPE numeric(10,2) USING "price"::numeric(10,2);`,
		`ALTER TABLE "shop"."bad" ALTER COLUMN "at" TYPE timestamp(3) USING "at"::timestamp(3);`,
		`ALTER TABLE "shop"."bad" ALTER COLUMN "name" DROP NOT NULL;`,
		`ALTER TABLE "shop"."bad" ADD COLUMN "_dbsync" text;`,
		`ALTER TABLE "shop"."bad" ADD PRIMARY KEY ("id");`,
	} {
		if !strings.Contains(sce.Fix, want) {
			t.Errorf("fix %q lacks %q", sce.Fix, want)
		}
	}
	if !strings.Contains(sce.What, `column "price" is numeric(10,1)`) {
		t.Errorf("What %q does not name column price and its type", sce.What)
	}
	fix := sce.Fix[strings.Index(sce.Fix, "ALTER") : strings.LastIndex(sce.Fix, ";")+1]
	if _, err := conn.Exec(ctx, fix); err != nil {
		t.Fatalf("run the fix %q: %v", fix, err)
	}
	if err := s.Prepare(ctx, &bad); err != nil {
		t.Fatalf("Prepare after the fix: %v", err)
	}
}

// TestPrepareRefuses checks the tables the sink cannot copy.
func TestPrepareRefuses(t *testing.T) {
	t.Parallel()
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)
	for name, c := range map[string]struct {
		tbl  *sink.Table
		want string
	}{
		"no primary key": {&sink.Table{DB: "shop", Name: "log", Columns: []sink.Column{{Name: "a", DataType: "int"}}}, "no primary key"},
		"unknown type": {&sink.Table{DB: "shop", Name: "u", PK: []string{"id"}, Columns: []sink.Column{{Name: "id", DataType: "int"},
			{Name: "x", DataType: "uuid", ColumnType: "uuid"}}}, `column "x" has source type uuid`},
		"version column": {&sink.Table{DB: "shop", Name: "v", PK: []string{"id"}, Columns: []sink.Column{{Name: "id", DataType: "int"},
			{Name: "_dbsync", DataType: "int"}}}, "Config.VersionColumn"},
		"long name": {&sink.Table{DB: "shop", Name: strings.Repeat("t", 64), PK: []string{"id"}, Columns: []sink.Column{{Name: "id", DataType: "int"}}}, "63-byte"},
	} {
		err := s.Prepare(ctx, c.tbl)
		if !failure.IsPermanent(err) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.tbl.String()) {
			t.Errorf("%s: Prepare: %v; want a permanent error naming %s and %q", name, err, c.tbl, c.want)
		}
	}
	var n int
	if err := p.Conn(t, "target").QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'shop'").Scan(&n); err != nil || n != 0 {
		t.Errorf("tables created for refused sources: %d, %v", n, err)
	}
}

// TestTargetNames checks Config.Schema, Config.TableName and the refusal of
// two sources mapped to one table, and concurrent Apply of different
// tables.
func TestTargetNames(t *testing.T) {
	t.Parallel()
	p := startPG(t)
	ctx := testCtx(t)
	conn := p.Conn(t, "target")
	exists := func(ident string) bool {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ident).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	public := newSink(t, p, pgsink.Config{Schema: "public"})
	a, b := kvTable(), kvTable()
	b.DB = "other"
	if err := public.Prepare(ctx, a); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if !exists(`public.kv`) {
		t.Errorf("Schema public: no table public.kv")
	}
	if err := public.Prepare(ctx, b); err == nil || !strings.Contains(err.Error(), "shop.kv and other.kv") || !strings.Contains(err.Error(), "Config.TableName") {
		t.Errorf("two sources in one table: %v; want a refusal naming both and Config.TableName", err)
	}

	named := newSink(t, p, pgsink.Config{SyncSchema: "sync_meta", VersionColumn: "_v", TableName: func(db, table string) (string, string) {
		return "Mirror", db + "__" + table
	}})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tbl := kvTable()
			tbl.Name = "kv" + itoa(uint32(i))
			errs[i] = named.Apply(ctx, batch(tbl, change(t, tbl, envelope.TypeInsert, 10, "", `{"id":1,"v":"x"}`)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Apply %d: %v", i, err)
		}
	}
	if !exists(`"Mirror".shop__kv7`) || !exists("sync_meta.progress") || !exists("sync_meta.deleted") {
		t.Errorf("TableName, SyncSchema: tables missing")
	}
	if cols := pgColumns(t, conn, "Mirror", "shop__kv0"); cols["_v"] != "text" {
		t.Errorf("VersionColumn _v: columns %v", cols)
	}
}

// TestNoPasswordInErrors checks that a DSN's password shows in no error.
func TestNoPasswordInErrors(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	port := testenv.FreePort(t)
	for _, dsn := range []string{
		"postgres://sync:s3cr3t-pw@127.0.0.1:" + itoa(uint32(port)) + "/target?connect_timeout=2",
		"host=127.0.0.1 port=" + itoa(uint32(port)) + " user=sync password=s3cr3t-pw connect_timeout=2",
		"postgres://sync:s3cr3t-pw@127.0.0.1:notaport/target",
		"host=127.0.0.1 port=x password=s3cr3t-pw",
	} {
		_, err := pgsink.New(ctx, pgsink.Config{DSN: dsn})
		if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("New(%q): %v; want an error without the password", strings.ReplaceAll(dsn, "s3cr3t-pw", "***"), err)
		}
	}
}

// TestDroppedTable drops the PostgreSQL table while the sink runs: Apply
// fails (transient) and does not create it empty again, telling to
// restart the sync; a restarted sync's Prepare creates it.
func TestDroppedTable(t *testing.T) {
	t.Parallel()
	p := startPG(t)
	s := newSink(t, p, pgsink.Config{})
	ctx := testCtx(t)
	tbl := kvTable()
	if err := s.Apply(ctx, batch(tbl, change(t, tbl, envelope.TypeInsert, 10, "", `{"id":1,"v":"a"}`))); err != nil {
		t.Fatalf("Apply (preparing the table): %v", err)
	}
	conn := p.Conn(t, "target")
	if _, err := conn.Exec(ctx, "DROP TABLE shop.kv"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err := s.Apply(ctx, batch(tbl, change(t, tbl, envelope.TypeInsert, 20, "", `{"id":2,"v":"b"}`)))
		if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "shop.kv") {
			t.Fatalf("Apply %d after DROP TABLE: %v; want a transient error naming the table", i, err)
		}
		if i == 1 && (!strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "restart the sync")) {
			t.Fatalf("Apply after DROP TABLE: %v; want it to say the table does not exist and to restart the sync", err)
		}
	}
	if _, err := s.Rows(ctx, tbl); err == nil {
		t.Fatalf("Rows of the dropped table: no error")
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('shop.kv') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("table shop.kv exists again (%v): created empty while syncing", err)
	}
	restarted := newSink(t, p, pgsink.Config{})
	if err := restarted.Prepare(ctx, tbl); err != nil {
		t.Fatalf("Prepare of a restarted sync: %v", err)
	}
	wantRows(t, restarted, tbl, map[string]string{})
}
