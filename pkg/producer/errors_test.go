package producer_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/internal/testenv"
)

// startFails runs the producer expecting it to refuse to start; it returns
// the exit code and stderr.
func (e *env) startFails(extraEnv ...string) (int, string) {
	e.t.Helper()
	p := e.start(extraEnv...)
	code := p.wait(60 * time.Second)
	return code, p.output()
}

// establishCheckpoint runs the producer once so that a checkpoint exists, and
// returns the bolt file's bytes.
func (e *env) establishCheckpoint() []byte {
	e.t.Helper()
	e.db.Exec(e.t, "CREATE DATABASE IF NOT EXISTS shop", "CREATE TABLE IF NOT EXISTS shop.t (id INT PRIMARY KEY)")
	p := e.start()
	waitLog(e.t, p, "binlog stream started")
	e.db.Exec(e.t, "INSERT INTO shop.t VALUES (1)")
	e.waitFor("shop.t", 1, 30*time.Second)
	if code := p.stop(); code != 0 {
		e.t.Fatalf("exit %d:\n%s", code, p.output())
	}
	return e.boltBytes()
}

func (e *env) boltBytes() []byte {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "pos.db"))
	if err != nil {
		e.t.Fatal(err)
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
	before := e.establishCheckpoint()
	cp, err := e.checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if !bytes.Equal(e.boltBytes(), before) {
			t.Fatal("the bolt checkpoint file changed")
		}
	}

	t.Run("wrong MySQL password", func(t *testing.T) {
		code, out := e.startFails("DBSYNC_MYSQL_PASSWORD=wrong")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, `refused user \"dbsync\"`, "Mysql.Password", "DBSYNC_MYSQL_PASSWORD")
		unchanged(t)
	})
	t.Run("unreachable broker", func(t *testing.T) {
		port := testenv.FreePort(t)
		code, out := e.startFails("DBSYNC_STAN_PORT=" + strconv.Itoa(port))
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, "127.0.0.1:"+strconv.Itoa(port))
		unchanged(t)
	})
	t.Run("invalid config", func(t *testing.T) {
		e.set("Mysql.Passwrd", "x")
		e.set("Batch.MaxRows", 0)
		defer func() {
			delete(e.cfg["Mysql"].(map[string]any), "Passwrd")
			delete(e.cfg["Batch"].(map[string]any), "MaxRows")
		}()
		code, out := e.startFails()
		if code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		mustContain(t, out, `Mysql.Passwrd`, `Batch.MaxRows`)
		unchanged(t)
	})
	t.Run("unreachable redis", func(t *testing.T) {
		port := testenv.FreePort(t)
		e.set("Storage.DaoName", "redis")
		e.set("Redis.Host", "127.0.0.1")
		e.set("Redis.Port", strconv.Itoa(port))
		defer e.set("Storage.DaoName", "bolt")
		code, out := e.startFails()
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, "127.0.0.1:"+strconv.Itoa(port), "redis")
		unchanged(t)
	})
	t.Run("purged binlog", func(t *testing.T) {
		// Move the server two binlogs on and purge the checkpoint's file.
		e.db.Exec(t, "FLUSH BINARY LOGS", "INSERT INTO shop.t VALUES (2)", "FLUSH BINARY LOGS")
		var current string
		row := e.db.DB(t).QueryRow("SHOW MASTER STATUS")
		var pos int64
		var a, b string
		if err := row.Scan(&current, &pos, &a, &b); err != nil {
			t.Fatal(err)
		}
		// PURGE skips files a replication connection still reads; the last
		// producer's dump thread may linger for a moment.
		deadline := time.Now().Add(30 * time.Second)
		for {
			e.db.Exec(t, "PURGE BINARY LOGS TO '"+current+"'")
			var first string
			var size int64
			if err := e.db.DB(t).QueryRow("SHOW BINARY LOGS").Scan(&first, &size); err != nil {
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
		code, out := e.startFails()
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, cp.File, "oldest binlog the server still has is "+current, "binlog_expire_logs_seconds")
		unchanged(t)
	})
	t.Run("corrupt bolt file", func(t *testing.T) {
		path := filepath.Join(e.dir, "pos.db")
		garbage := bytes.Repeat([]byte("not a bolt database "), 300)
		if err := os.WriteFile(path, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := e.startFails()
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		mustContain(t, out, path, "dbsync will not guess a position")
		if !bytes.Equal(e.boltBytes(), garbage) {
			t.Error("the corrupt file was modified")
		}
		if strings.Contains(out, "NO CHECKPOINT FOUND") {
			t.Error("fell back to the current position")
		}
	})
}
