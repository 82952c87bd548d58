package sink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// ErrNoTable is wrapped by LoadTables' error for a table the source does not
// have (or the user may not see).
var ErrNoTable = errors.New("source table not found")

// LoadTables describes the source tables names ({db, table} pairs) from the
// information_schema of a MySQL or MariaDB connection: the columns in
// ordinal order (COLUMNS) and the primary key in key order
// (KEY_COLUMN_USAGE). On MariaDB a LONGTEXT column with a json_valid(col)
// check (MariaDB's JSON type) gets DataType "json", as MySQL's JSON has.
// A table without a primary key is returned with an empty PK (a sink
// refuses it). It fails on the first table that does not exist (wrapping
// ErrNoTable and naming it) or on a query error, naming the table.
func LoadTables(ctx context.Context, db *sql.DB, names [][2]string) ([]*Table, error) {
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return nil, fmt.Errorf("load source tables: read the server version: %w", err)
	}
	mariadb := strings.Contains(strings.ToLower(version), "mariadb")
	tables := make([]*Table, 0, len(names))
	for _, n := range names {
		t, err := loadTable(ctx, db, n[0], n[1], mariadb)
		if err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	return tables, nil
}

// loadTable reads one table's columns, primary key and (MariaDB) JSON
// checks.
func loadTable(ctx context.Context, db *sql.DB, dbName, name string, mariadb bool) (*Table, error) {
	t := &Table{DB: dbName, Name: name}
	fail := func(what string, err error) error {
		return fmt.Errorf("load source table %s: %s: %w", t, what, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), IS_NULLABLE,
		IFNULL(NUMERIC_PRECISION, 0), IFNULL(NUMERIC_SCALE, 0), IFNULL(DATETIME_PRECISION, 0), IFNULL(CHARACTER_MAXIMUM_LENGTH, 0)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, dbName, name)
	if err != nil {
		return nil, fail("read information_schema.COLUMNS", err)
	}
	for rows.Next() {
		var c Column
		var nullable string
		var numPrecision, numScale, dtPrecision int
		if err := rows.Scan(&c.Name, &c.DataType, &c.ColumnType, &nullable, &numPrecision, &numScale, &dtPrecision, &c.MaxLength); err != nil {
			_ = rows.Close()
			return nil, fail("read information_schema.COLUMNS", err)
		}
		c.Nullable = strings.EqualFold(nullable, "YES")
		switch c.DataType {
		case "datetime", "timestamp", "time":
			c.Precision = dtPrecision
		default:
			c.Precision, c.Scale = numPrecision, numScale
		}
		t.Columns = append(t.Columns, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fail("read information_schema.COLUMNS", err)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("load source table %s: %w: information_schema.COLUMNS has no column of it (check the name, and that the source user may see the table)", t, ErrNoTable)
	}

	rows, err = db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, dbName, name)
	if err != nil {
		return nil, fail("read the primary key from information_schema.KEY_COLUMN_USAGE", err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			_ = rows.Close()
			return nil, fail("read the primary key from information_schema.KEY_COLUMN_USAGE", err)
		}
		t.PK = append(t.PK, k)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fail("read the primary key from information_schema.KEY_COLUMN_USAGE", err)
	}

	if mariadb {
		if err := markMariaDBJSON(ctx, db, t); err != nil {
			return nil, fail("read JSON checks from information_schema.CHECK_CONSTRAINTS", err)
		}
	}
	return t, nil
}

// markMariaDBJSON sets DataType "json" on the columns a json_valid(`col`)
// check constrains: MariaDB's JSON is LONGTEXT with that check.
func markMariaDBJSON(ctx context.Context, db *sql.DB, t *Table) error {
	rows, err := db.QueryContext(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, t.DB, t.Name)
	if err != nil {
		return err
	}
	for rows.Next() {
		var clause string
		if err := rows.Scan(&clause); err != nil {
			_ = rows.Close()
			return err
		}
		col, ok := jsonValidColumn(clause)
		if !ok {
			continue
		}
		for i := range t.Columns {
			if c := &t.Columns[i]; strings.EqualFold(c.Name, col) && strings.HasSuffix(c.DataType, "text") {
				c.DataType = "json"
			}
		}
	}
	return errors.Join(rows.Err(), rows.Close())
}

// jsonValidColumn recognises MariaDB's "json_valid(`col`)" check clause.
func jsonValidColumn(clause string) (string, bool) {
	c := strings.TrimSpace(clause)
	if !strings.HasPrefix(strings.ToLower(c), "json_valid(`") || !strings.HasSuffix(c, "`)") {
		return "", false
	}
	return strings.ReplaceAll(c[len("json_valid(`"):len(c)-2], "``", "`"), true
}
