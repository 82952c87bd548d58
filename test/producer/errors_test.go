package producer_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// startFails runs the producer expecting it to refuse to start; it returns
// the exit code and stderr.
func startFails(e *e2e.Env, extraEnv ...string) (int, string) {
	e.T.Helper()
	p := e.Start(extraEnv...)
	code := p.Wait(60 * time.Second)
	return code, p.Output()
}

// establishCheckpoint runs the producer once so that a checkpoint exists, and
// returns the bolt file's bytes.
func establishCheckpoint(e *e2e.Env) []byte {
	e.T.Helper()
	e.DB.Exec(e.T, "CREATE DATABASE IF NOT EXISTS shop", "CREATE TABLE IF NOT EXISTS shop.t (id INT PRIMARY KEY)")
	p := e.Start()
	e2e.WaitLog(e.T, p, "binlog stream started")
	e.DB.Exec(e.T, "INSERT INTO shop.t VALUES (1)")
	e.WaitFor("shop.t", 1, 30*time.Second)
	if code := p.Stop(); code != 0 {
		e.T.Fatalf("exit %d:\n%s", code, p.Output())
	}
	return boltBytes(e)
}

func boltBytes(e *e2e.Env) []byte {
	e.T.Helper()
	b, err := os.ReadFile(filepath.Join(e.Dir, "pos.db"))
	if err != nil {
		e.T.Fatal(err)
	}
	return b
}

func mustContain(t *testing.T, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

// TestStartupErrors: each bad situation stops the producer with an error that
// names the thing and the fix, and leaves the checkpoint where it was.
func TestStartupErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := establishCheckpoint(e)
	cp, err := e.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if !bytes.Equal(boltBytes(e), before) {
			t.Fatal("the bolt checkpoint file changed")
		}
	}

	t.Run("wrong MySQL password", func(t *testing.T) {
		code, out := startFails(e, "DBSYNC_MYSQL_PASSWORD=wrong")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, `refused user \"dbsync\"`, "Mysql.Password", "DBSYNC_MYSQL_PASSWORD")
		unchanged(t)
	})
	t.Run("unreachable broker", func(t *testing.T) {
		port := testenv.FreePort(t)
		code, out := startFails(e, "DBSYNC_STAN_PORT="+strconv.Itoa(port))
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, "127.0.0.1:"+strconv.Itoa(port))
		unchanged(t)
	})
	t.Run("invalid config", func(t *testing.T) {
		e.Set("Mysql.Passwrd", "x")
		e.Set("Batch.MaxRows", 0)
		defer func() {
			delete(e.Cfg["Mysql"].(map[string]any), "Passwrd")
			delete(e.Cfg["Batch"].(map[string]any), "MaxRows")
		}()
		code, out := startFails(e)
		if code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		mustContain(t, out, `Mysql.Passwrd`, `Batch.MaxRows`)
		unchanged(t)
	})
	t.Run("unreachable redis", func(t *testing.T) {
		port := testenv.FreePort(t)
		e.Set("Storage.DaoName", "redis")
		e.Set("Redis.Host", "127.0.0.1")
		e.Set("Redis.Port", strconv.Itoa(port))
		defer e.Set("Storage.DaoName", "bolt")
		code, out := startFails(e)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, "127.0.0.1:"+strconv.Itoa(port), "redis")
		unchanged(t)
	})
	t.Run("purged binlog", func(t *testing.T) {
		// Move the server two binlogs on and purge the checkpoint's file.
		e.DB.Exec(t, "FLUSH BINARY LOGS", "INSERT INTO shop.t VALUES (2)", "FLUSH BINARY LOGS")
		var current string
		row := e.DB.DB(t).QueryRow("SHOW MASTER STATUS")
		var pos int64
		var a, b string
		if err := row.Scan(&current, &pos, &a, &b); err != nil {
			t.Fatal(err)
		}
		// PURGE skips files a replication connection still reads; the last
		// producer's dump thread may linger for a moment.
		deadline := time.Now().Add(30 * time.Second)
		for {
			e.DB.Exec(t, "PURGE BINARY LOGS TO '"+current+"'")
			var first string
			var size int64
			if err := e.DB.DB(t).QueryRow("SHOW BINARY LOGS").Scan(&first, &size); err != nil {
				t.Fatal(err)
			}
			if first == current {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server would not purge up to %s (oldest is still %s)", current, first)
			}
			time.Sleep(200 * time.Millisecond)
		}
		code, out := startFails(e)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, cp.File, "oldest binlog the server still has is "+current, "binlog_expire_logs_seconds")
		unchanged(t)
	})
	t.Run("corrupt bolt file", func(t *testing.T) {
		path := filepath.Join(e.Dir, "pos.db")
		garbage := bytes.Repeat([]byte("not a bolt database "), 300)
		if err := os.WriteFile(path, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := startFails(e)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, path, "dbsync will not guess a position")
		if !bytes.Equal(boltBytes(e), garbage) {
			t.Error("the corrupt file was modified")
		}
		if strings.Contains(out, "NO CHECKPOINT FOUND") {
			t.Error("fell back to the current position")
		}
	})
}

// TestSourceThatCannotStream: a server (here a SQL proxy in front of
// MariaDB) that answers queries but refuses the replica's binlog dump
// request ("command not implemented") stops the producer at once with what
// is missing and the fix; it never says the binlog stream started, and the
// checkpoint stays where it was.
func TestSourceThatCannotStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := establishCheckpoint(e)
	proxy := testenv.StartMySQLProxy(t, e.DB, testenv.MySQLProxyOptions{User: "dbsync", Password: "secret"})
	e.Set("Mysql.Port", strconv.Itoa(proxy.Port))
	code, out := startFails(e)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	mustContain(t, out, "does not stream its binlog", "COM_BINLOG_DUMP", "command not implemented", "(not a proxy)")
	if strings.Contains(out, "binlog stream started") {
		t.Errorf("the producer said the binlog stream started although the server refused it:\n%s", out)
	}
	if !bytes.Equal(boltBytes(e), before) {
		t.Error("the checkpoint file changed")
	}
}
