package producer_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestCheckpointCommands: show, set (by file and position, and by GTID) and
// reset work, set refuses a position that is not a transaction boundary, on a stopped producer's store, and set and reset are refused
// while a producer runs — for the bolt file and for redis.
func TestCheckpointCommands(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"bolt", "redis"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if store == "redis" {
				r := testenv.StartRedis(t)
				e.Set("Storage.DaoName", "redis")
				e.Set("Redis.Host", r.Host)
				e.Set("Redis.Port", strconv.Itoa(r.Port))
			}
			e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
			p := e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			e.DB.Exec(t, "INSERT INTO shop.t VALUES (1)")
			e.WaitFor("shop.t", 1, 30*time.Second)

			// While it runs: set and reset are refused, nothing changes.
			for _, args := range [][]string{{"checkpoint", "set", "mysql-bin.000001", "4"}, {"checkpoint", "reset"}} {
				code, _, stderr := e.Command(args...)
				if code != 1 || !strings.Contains(stderr, "refused: a running producer holds the checkpoint store") {
					t.Errorf("%v while running: exit %d, stderr:\n%s", args, code, stderr)
				}
			}
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}

			code, out, stderr := e.Command("checkpoint", "show")
			if code != 0 || !strings.HasPrefix(out, "mysql-bin.000001:") || !strings.Contains(out, "history ") {
				t.Fatalf("show: exit %d, out %q, stderr %s", code, out, stderr)
			}
			history := strings.FieldsFunc(out[strings.Index(out, "history ")+len("history "):], func(r rune) bool { return r == ',' || r == ')' })[0]
			// Set by file and position: back to the start of the file, so
			// the next run publishes row 1 again.
			if code, out, stderr = e.Command("checkpoint", "set", "mysql-bin.000001", "4"); code != 0 {
				t.Fatalf("set: exit %d, out %q, stderr %s", code, out, stderr)
			}
			// The position is of the same binlog history: its id stays.
			if _, out, _ = e.Command("checkpoint", "show"); strings.TrimSpace(out) != "mysql-bin.000001:4 (history "+history+", server_id 1)" {
				t.Fatalf("show after set: %q, want the same history %s", out, history)
			}
			p = e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			e.WaitFor("shop.t", 2, 30*time.Second)
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			// Set by GTID: right after the insert of row 1.
			var gtid string
			conn := e.DB.DB(t)
			if err := conn.QueryRow("SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
				t.Fatal(err)
			}
			if code, out, stderr = e.Command("checkpoint", "set", "-gtid", gtid); code != 0 || !strings.Contains(out, "checkpoint set to mysql-bin.000001:") {
				t.Fatalf("set -gtid %s: exit %d, out %q, stderr %s", gtid, code, out, stderr)
			}
			// A position inside an event, or inside a transaction, is refused
			// with the nearest boundaries and a fix.
			inside := ""
			rows, err := e.DB.DB(t).Query("SHOW BINLOG EVENTS IN 'mysql-bin.000001'")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var file, typ, info string
				var pos, serverID, end int64
				if err := rows.Scan(&file, &pos, &typ, &serverID, &end, &info); err != nil {
					t.Fatal(err)
				}
				if inside == "" && strings.HasPrefix(typ, "Table_map") {
					inside = strconv.FormatInt(pos, 10)
				}
			}
			rows.Close()
			for _, pos := range []string{"5", inside} {
				if code, _, stderr = e.Command("checkpoint", "set", "mysql-bin.000001", pos); code != 1 ||
					!strings.Contains(stderr, "is not a transaction boundary") || !strings.Contains(stderr, "fix:") {
					t.Errorf("set to mysql-bin.000001:%s: exit %d, stderr %s", pos, code, stderr)
				}
			}
			// A position the server does not have is refused.
			if code, _, stderr = e.Command("checkpoint", "set", "mysql-bin.000009", "4"); code != 1 || !strings.Contains(stderr, "mysql-bin.000009") {
				t.Errorf("set to a missing binlog: exit %d, stderr %s", code, stderr)
			}
			// Reset: to the server's current position; rows written before
			// it are not published, rows after it are.
			e.DB.Exec(t, "INSERT INTO shop.t VALUES (2)")
			if code, out, stderr = e.Command("checkpoint", "reset"); code != 0 || !strings.HasPrefix(out, "checkpoint reset to mysql-bin.") {
				t.Fatalf("reset: exit %d, out %q, stderr %s", code, out, stderr)
			}
			e.DB.Exec(t, "INSERT INTO shop.t VALUES (3)")
			p = e.Start()
			e2e.WaitLog(t, p, "resuming from checkpoint")
			e.WaitFor("shop.t", 3, 30*time.Second)
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			if got := e.Read("shop.t"); len(got) != 3 || e2e.IntField(t, got[2].After, "id") != 3 {
				t.Fatalf("after reset the subject holds %d messages, want 3 ending with id 3 (row 2 skipped)", len(got))
			}
		})
	}
}
