package binlog

import (
	"context"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/dbsync/dbsync/test/testenv"
)

// TestPositionAfterGTID: the position after a transaction's GTID is where
// the server's binlog stood right after that transaction committed, for a
// transaction, a DDL statement and a transaction in an older binlog file.
func TestPositionAfterGTID(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, src, _ := connectTest(ctx, t, db)
	conn, err := db.DB(t).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	step := func(stmt string) (gtid string, after string) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid); err != nil {
			t.Fatal(err)
		}
		pos, err := src.CurrentPosition(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return gtid, pos.File + ":" + itoa(pos.Pos)
	}
	type tc struct{ name, gtid, want string }
	var cases []tc
	g, want := step("CREATE DATABASE g")
	cases = append(cases, tc{"ddl", g, want})
	step("CREATE TABLE g.t (id INT PRIMARY KEY)")
	g, want = step("INSERT INTO g.t VALUES (1)")
	cases = append(cases, tc{"insert in an older file", g, want})
	step("FLUSH BINARY LOGS")
	g, want = step("INSERT INTO g.t VALUES (2), (3)")
	cases = append(cases, tc{"insert", g, want})
	step("INSERT INTO g.t VALUES (4)")
	for _, page := range []int{0, 2, 3} { // the default, and pages of a few events
		src.eventsPage = page
		for _, c := range cases {
			pos, err := src.PositionAfterGTID(t.Context(), c.gtid)
			if err != nil {
				t.Fatalf("page %d: %s: %v", page, c.name, err)
			}
			if got := pos.File + ":" + itoa(pos.Pos); got != c.want {
				t.Errorf("page %d: %s: GTID %s → %s, want %s", page, c.name, c.gtid, got, c.want)
			}
		}
	}
	if _, err := src.PositionAfterGTID(t.Context(), "0-1-999"); err == nil {
		t.Error("an unknown GTID was found")
	}
}

// TestMariaDBGTIDFormat: the reader's GTID text is go-mysql's.
func TestMariaDBGTIDFormat(t *testing.T) {
	for _, g := range []mysql.MariadbGTID{{}, {DomainID: 0, ServerID: 1, SequenceNumber: 5},
		{DomainID: 4294967295, ServerID: 4294967295, SequenceNumber: 18446744073709551615}} {
		if got, want := mariadbGTID(g), g.String(); got != want {
			t.Errorf("mariadbGTID(%+v) = %q, want %q", g, got, want)
		}
	}
}
