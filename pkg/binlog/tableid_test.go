package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestTableIDsReassignedAfterServerRestart reads, in one pass, a binlog
// written before and after a server restart. The restarted server numbers
// its tables afresh, so a table id of the old file names another table in
// the new one: every row must still be published as its own table's, and
// no row of an included table may be taken for an excluded one's.
func TestTableIDsReassignedAfterServerRestart(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db.Exec(t, "CREATE DATABASE r",
		"CREATE TABLE r.a (id INT PRIMARY KEY, v VARCHAR(10))",
		"CREATE TABLE r.b (id INT PRIMARY KEY, v VARCHAR(10))",
		"CREATE TABLE r.skip (id INT PRIMARY KEY, v VARCHAR(10))")
	cfg, src, log := connectTest(ctx, t, db)
	start, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	// Before the restart the tables are opened in the order a, b, skip;
	// after it in the order skip, b, a.
	db.Exec(t, "INSERT INTO r.a VALUES (1, 'a')", "INSERT INTO r.b VALUES (1, 'b')", "INSERT INTO r.skip VALUES (1, 'skip')")
	before := tableIDs(t, db.DB(t))
	db.Stop(t)
	db.Start(t)
	db.Exec(t, "INSERT INTO r.skip VALUES (2, 'skip')", "INSERT INTO r.b VALUES (2, 'b')", "INSERT INTO r.a VALUES (2, 'a')")
	after := tableIDs(t, db.DB(t))
	reused := false
	for name, id := range after {
		for other, old := range before {
			reused = reused || (old == id && other != name)
		}
	}
	if !reused {
		t.Fatalf("setup: the restarted server gave no table another table's id (before %v, after %v)", before, after)
	}

	cfg.Include = func(db, table string) bool { return table != "skip" }
	src, err = Connect(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	events := make(chan Event, 64)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- NewReader(cfg, src, log).Run(ctx, start, stop, events) }()
	var got []string
	for len(got) < 4 {
		select {
		case ev := <-events:
			for _, r := range ev.Rows {
				env, err := envelope.Decode(r.Data)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%s.%s=%s", env.Table, env.After["id"], env.After["v"]))
			}
		case err := <-done:
			t.Fatalf("reader stopped: %v (rows so far %v)", err, got)
		case <-ctx.Done():
			t.Fatalf("got rows %v, want 4 (before the restart the tables had ids %v, after it %v)", got, before, after)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{`a.1="a"`, `b.1="b"`, `b.2="b"`, `a.2="a"`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v (table ids before the restart %v, after it %v)", got, want, before, after)
	}
}

// tableIDs returns the table id the server's newest binlog file gives each
// table of database r, from its Table_map events.
func tableIDs(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	var file string
	var pos any
	var ignore1, ignore2, ignore3 any
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &ignore1, &ignore2); err != nil {
		if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &ignore1, &ignore2, &ignore3); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Query("SHOW BINLOG EVENTS IN '" + file + "'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	re := regexp.MustCompile(`table_id: (\d+) \(r\.(\w+)\)`)
	ids := map[string]string{}
	for rows.Next() {
		var name, typ, info string
		var p, sid, end any
		if err := rows.Scan(&name, &p, &typ, &sid, &end, &info); err != nil {
			t.Fatal(err)
		}
		if m := re.FindStringSubmatch(info); m != nil {
			ids[m[2]] = m[1]
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
