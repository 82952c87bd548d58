package producer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
)

// TestSameNamedTablesInTwoDatabases: inserts, updates and deletes on a.items
// and b.items land on their own subjects, in binlog order, each with the
// right type and images.
func TestSameNamedTablesInTwoDatabases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.DB.Exec(t,
		"CREATE DATABASE a", "CREATE DATABASE b",
		"CREATE TABLE a.items (id INT PRIMARY KEY, name VARCHAR(20))",
		"CREATE TABLE b.items (id INT PRIMARY KEY, name VARCHAR(20))")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t,
		"INSERT INTO a.items VALUES (1, 'a1'), (2, 'a2')",
		"INSERT INTO b.items VALUES (1, 'b1')",
		"UPDATE a.items SET name = 'a1x' WHERE id = 1",
		"DELETE FROM b.items WHERE id = 1",
		"DELETE FROM a.items WHERE id = 2")
	e.WaitFor("a.items", 4, 30*time.Second)
	e.WaitFor("b.items", 2, 30*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.Output())
	}
	want := map[string][]string{
		"a.items": {"insert 1 a1", "insert 2 a2", "update 1 a1x", "delete 2 a2"},
		"b.items": {"insert 1 b1", "delete 1 b1"},
	}
	for subject, rows := range want {
		got := e.Read(subject)
		if len(got) != len(rows) {
			t.Fatalf("%s: %d messages, want %d", subject, len(got), len(rows))
		}
		for i, env := range got {
			img := env.After
			if env.Type == "delete" {
				img = env.Before
			}
			s := fmt.Sprintf("%s %d %s", env.Type, e2e.IntField(t, img, "id"), img["name"][1:len(img["name"])-1])
			if s != rows[i] {
				t.Errorf("%s message %d: %s, want %s", subject, i, s, rows[i])
			}
			if env.DB+"."+env.Table != subject {
				t.Errorf("%s message %d is about %s.%s", subject, i, env.DB, env.Table)
			}
			if env.Type == "update" && string(env.Before["name"]) != `"a1"` {
				t.Errorf("update before image %s", env.Before["name"])
			}
		}
	}
}

// TestCleanRestartDeliversNoDuplicate: SIGTERM, more writes, restart,
// SIGTERM: every row is on the subject exactly once.
func TestCleanRestartDeliversNoDuplicate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(20))")
	for round := 0; round < 3; round++ {
		p := e.Start()
		e2e.WaitLog(t, p, "binlog stream started")
		for i := 0; i < 50; i++ {
			id := round*50 + i
			e.DB.Exec(t, fmt.Sprintf("INSERT INTO shop.orders VALUES (%d, 'r%d')", id, round))
		}
		e.WaitFor("shop.orders", (round+1)*50, 30*time.Second)
		if code := p.Stop(); code != 0 {
			t.Fatalf("round %d: exit %d; stderr:\n%s", round, code, p.Output())
		}
	}
	got := e.Read("shop.orders")
	if len(got) != 150 {
		t.Fatalf("%d messages after three clean runs, want 150 (no duplicate)", len(got))
	}
	for i, env := range got {
		if id := e2e.IntField(t, env.After, "id"); id != int64(i) {
			t.Fatalf("message %d has id %d", i, id)
		}
	}
}

// TestFirstStart: with no checkpoint, the default starts at the server's
// current position (saying so loudly); Mysql.StartAt "oldest" starts at the
// oldest binlog, so rows written before the first start are delivered too.
func TestFirstStart(t *testing.T) {
	t.Parallel()
	for _, startAt := range []string{"current", "oldest"} {
		t.Run(startAt, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.Set("Mysql.StartAt", startAt)
			e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.early (id INT PRIMARY KEY)",
				"INSERT INTO shop.early VALUES (1), (2)")
			p := e.Start()
			e2e.WaitLog(t, p, "NO CHECKPOINT FOUND")
			e2e.WaitLog(t, p, "binlog stream started")
			e.DB.Exec(t, "INSERT INTO shop.early VALUES (3)")
			want := 1
			if startAt == "oldest" {
				want = 3
			}
			e.WaitFor("shop.early", want, 30*time.Second)
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			got := e.Read("shop.early")
			if len(got) != want || e2e.IntField(t, got[len(got)-1].After, "id") != 3 {
				t.Fatalf("%d messages, want %d ending with id 3", len(got), want)
			}
		})
	}
}
