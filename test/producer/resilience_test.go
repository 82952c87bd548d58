package producer_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
)

// TestBrokerOutageReplaysFromCheckpoint stops the broker under a write load
// and starts it again: the producer notices, keeps its checkpoint, waits,
// resumes on its own and delivers every committed row in order.
func TestBrokerOutageReplaysFromCheckpoint(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{e2e.Stan, e2e.JetStream} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			e := e2e.NewEnvBroker(t, producerBin, broker)
			e.DB.Exec(t, "CREATE DATABASE wl")
			p := e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			l := e2e.StartLoad(t, e.DB.DB(t), 2)
			time.Sleep(500 * time.Millisecond)
			e.StopBroker()
			time.Sleep(3 * time.Second)
			e.StartBroker()
			time.Sleep(time.Second)
			committed := l.Finish()
			for i := range committed {
				e.WaitDistinct(subjectOf(i), len(committed[i]), 2*time.Minute)
			}
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			if !strings.Contains(p.Output(), "resuming from the last checkpoint") {
				t.Errorf("the producer did not report the outage:\n%s", p.Output())
			}
			total := 0
			for i := range committed {
				checkDelivery(t, subjectOf(i), committed[i], e.Read(subjectOf(i)))
				total += len(committed[i])
			}
			t.Logf("%s down 3s under load: %d rows committed, all delivered in order", broker, total)
		})
	}
}

func subjectOf(table int) string { return "wl.t" + string(rune('0'+table)) }

// TestExcludedTablesPublishNothing: Tables.Exclude keeps a table's rows off
// the broker while its neighbours flow.
func TestExcludedTablesPublishNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Set("Tables.Exclude", []string{"shop.secret_*"})
	e.DB.Exec(t, "CREATE DATABASE shop",
		"CREATE TABLE shop.secret_keys (id INT PRIMARY KEY)",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.secret_keys VALUES (1)", "INSERT INTO shop.orders VALUES (1)",
		"INSERT INTO shop.secret_keys VALUES (2)", "INSERT INTO shop.orders VALUES (2)")
	e.WaitFor("shop.orders", 2, 30*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if slices.Contains(e.Subjects(), "shop.secret_keys") {
		t.Fatal("an excluded table was published")
	}
	if n := e.Count("shop.orders"); n != 2 {
		t.Fatalf("shop.orders holds %d messages, want 2", n)
	}
}

// TestCheckpointAtRotationAndDDL: a binlog rotation and a DDL statement each
// checkpoint at once, even with no rows to publish (the producer is then
// killed, so no shutdown checkpoint can stand in for them).
func TestCheckpointAtRotationAndDDL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Set("Batch.MaxWait", "1h") // only the rotation or DDL itself may flush
	e.Set("Batch.FlushWhenIdle", false)
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "FLUSH BINARY LOGS")
	var file string
	var pos int64
	var a, b string
	if err := e.DB.DB(t).QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &a, &b); err != nil {
		t.Fatal(err)
	}
	waitCheckpointLog(t, p, file+":4")
	e.DB.Exec(t, "CREATE DATABASE ddl_test")
	if err := e.DB.DB(t).QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &a, &b); err != nil {
		t.Fatal(err)
	}
	waitCheckpointLog(t, p, file+":"+itoa(pos))
	p.Kill()
	cp, err := e.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cp.File != file || int64(cp.Pos) != pos {
		t.Fatalf("checkpoint %s after DDL, want %s:%d", cp, file, pos)
	}
}

// waitCheckpointLog waits for the producer's debug log of a saved checkpoint.
func waitCheckpointLog(t *testing.T, p *e2e.Proc, pos string) {
	t.Helper()
	e2e.WaitLog(t, p, `saved="`+pos)
}

func itoa(n int64) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestUnsupportedCharsetHalts: a column in a character set dbsync cannot
// convert exactly stops the producer with an error naming the table, the
// column and the fix, and the checkpoint stays before the row.
func TestUnsupportedCharsetHalts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.legacy (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET gbk)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.legacy VALUES (1, 'x')")
	if code := p.Wait(30 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
	}
	for _, want := range []string{"shop.legacy", `column \"name\"`, "gbk", "utf8mb4", "Tables.Exclude"} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("output lacks %q:\n%s", want, p.Output())
		}
	}
	if e.Count("shop.legacy") != 0 {
		t.Error("the row was published")
	}
	before, err := e.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	p = e.Start() // still refuses: the row is still owed
	if code := p.Wait(30 * time.Second); code != 1 {
		t.Fatalf("restart exit %d, want 1", code)
	}
	after, err := e.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("checkpoint moved from %s to %s past an unpublished row", before, after)
	}
}

// TestUnpublishableTablesSkipped: with Tables.OnUnpublishable skip, a table
// whose name cannot be a subject (it holds a dot) and a table with a
// column in a character set dbsync cannot convert each get a marker on the
// dead-letter subject per change, and the other tables stream on. With
// stop (the default) the dotted table halts the producer naming it and how
// to exclude it; excluded by its quoted name, it is ignored.
func TestUnpublishableTablesSkipped(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) *e2e.Env {
		e := newEnv(t)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.ok (id INT PRIMARY KEY)",
			"CREATE TABLE shop.`orders.2024` (id INT PRIMARY KEY)",
			"CREATE TABLE shop.legacy (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET gbk)")
		return e
	}
	write := func(e *e2e.Env) {
		e.DB.Exec(t, "INSERT INTO shop.ok VALUES (1)", "INSERT INTO shop.`orders.2024` VALUES (1)", "INSERT INTO shop.`orders.2024` VALUES (2)",
			"INSERT INTO shop.legacy VALUES (1, 'x')", "INSERT INTO shop.ok VALUES (2)")
	}
	t.Run("skip", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.Set("Tables.OnUnpublishable", "skip")
		p := e.Start()
		e2e.WaitLog(t, p, "binlog stream started")
		write(e)
		e.WaitFor("shop.ok", 2, 30*time.Second)
		e.WaitFor("_dbsync.deadletter", 3, 30*time.Second)
		var tables []string
		for _, data := range e.RawMessages("_dbsync.deadletter") {
			u, err := envelope.DecodeUnpublishable(data)
			if err != nil {
				t.Fatal(err)
			}
			tables = append(tables, u.Table+": "+u.Reason)
		}
		got := strings.Join(tables, "\n")
		for _, want := range []string{"orders.2024: the name contains a character that cannot be part of a broker subject", "legacy: column \"name\": character set gbk"} {
			if !strings.Contains(got, want) {
				t.Errorf("dead-letter markers lack %q:\n%s", want, got)
			}
		}
		if code := p.Stop(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, p.Output())
		}
	})
	t.Run("stop, then exclude by the quoted name", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.Set("Tables.Exclude", []string{"shop.legacy"})
		p := e.Start()
		e2e.WaitLog(t, p, "binlog stream started")
		write(e)
		if code := p.Wait(30 * time.Second); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
		}
		mustContain(t, p.Output(), "shop.orders.2024", "Tables.Exclude", "shop.`orders.2024`", "Tables.OnUnpublishable")
		e.Set("Tables.Exclude", []string{"shop.legacy", "shop.`orders.2024`"})
		p = e.Start()
		e2e.WaitLog(t, p, "binlog stream started")
		e.WaitFor("shop.ok", 2, 30*time.Second)
		if code := p.Stop(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, p.Output())
		}
	})
}
