package sink_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/test/testenv"
)

func TestLoadTables(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{NoBinlog: true})
	m.Exec(t,
		"CREATE DATABASE shop",
		`CREATE TABLE shop.orders (
			region CHAR(2) NOT NULL, id BIGINT UNSIGNED NOT NULL, total DECIMAL(10,2), note VARCHAR(40),
			doc JSON, at DATETIME(3) NOT NULL, state ENUM('new','paid') NOT NULL DEFAULT 'new', flags BIT(5),
			PRIMARY KEY (id, region))`,
		"CREATE TABLE shop.nokey (a INT, b TEXT)",
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := m.DB(t)

	got, err := sink.LoadTables(ctx, db, [][2]string{{"shop", "orders"}, {"shop", "nokey"}})
	if err != nil {
		t.Fatalf("LoadTables: %v", err)
	}
	want := []*sink.Table{
		{DB: "shop", Name: "orders", PK: []string{"id", "region"}, Columns: []sink.Column{
			{Name: "region", DataType: "char", ColumnType: "char(2)", MaxLength: 2},
			{Name: "id", DataType: "bigint", ColumnType: "bigint(20) unsigned", Precision: 20},
			{Name: "total", DataType: "decimal", ColumnType: "decimal(10,2)", Nullable: true, Precision: 10, Scale: 2},
			{Name: "note", DataType: "varchar", ColumnType: "varchar(40)", Nullable: true, MaxLength: 40},
			// MariaDB's JSON: LONGTEXT with a json_valid check.
			{Name: "doc", DataType: "json", ColumnType: "longtext", Nullable: true, MaxLength: 4294967295},
			{Name: "at", DataType: "datetime", ColumnType: "datetime(3)", Precision: 3},
			{Name: "state", DataType: "enum", ColumnType: "enum('new','paid')", MaxLength: 4},
			{Name: "flags", DataType: "bit", ColumnType: "bit(5)", Nullable: true, Precision: 5},
		}},
		{DB: "shop", Name: "nokey", Columns: []sink.Column{
			{Name: "a", DataType: "int", ColumnType: "int(11)", Nullable: true, Precision: 10},
			{Name: "b", DataType: "text", ColumnType: "text", Nullable: true, MaxLength: 65535},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range got {
			t.Errorf("table %d = %+v", i, *got[i])
		}
		t.Fatalf("want %+v\n%+v", *want[0], *want[1])
	}
	if c, ok := got[0].Column("ID"); !ok || c.Name != "id" || !c.Unsigned() {
		t.Errorf("Column(ID) = %+v, %v; want the unsigned id", c, ok)
	}

	_, err = sink.LoadTables(ctx, db, [][2]string{{"shop", "orders"}, {"shop", "missing"}})
	if !errors.Is(err, sink.ErrNoTable) || !strings.Contains(err.Error(), "shop.missing") {
		t.Fatalf("LoadTables of a missing table: %v; want ErrNoTable naming shop.missing", err)
	}
}
