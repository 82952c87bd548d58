package testenv

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestPostgresStartQueryKillStart(t *testing.T) {
	t.Parallel()
	p := StartPostgres(t)
	if p.Host != "127.0.0.1" || p.User != "postgres" || p.Port == 0 {
		t.Fatalf("Postgres = %+v, want user postgres on 127.0.0.1 and a port", p)
	}
	if want := "postgres://postgres@" + p.Addr() + "/shop?sslmode=disable"; p.DSN("shop") != want {
		t.Fatalf("DSN = %q, want %q", p.DSN("shop"), want)
	}
	p.CreateDB(t, "shop")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	conn := p.Conn(t, "shop")
	var db, fsync, sockets string
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_setting('fsync'), current_setting('unix_socket_directories')").Scan(&db, &fsync, &sockets); err != nil {
		t.Fatalf("query: %v", err)
	}
	if db != "shop" || fsync != "on" || sockets != p.SocketDir {
		t.Fatalf("database %q, fsync %q, socket dir %q; want shop, on, %s", db, fsync, sockets, p.SocketDir)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'committed')"); err != nil {
		t.Fatalf("create and insert: %v", err)
	}

	// A crash keeps what was committed; Start comes back on the same port.
	p.Kill(t)
	if err := conn.Ping(ctx); err == nil {
		t.Fatalf("ping after Kill: no error, want the server gone")
	}
	p.Start(t)
	conn = p.Conn(t, "shop")
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "committed" {
		t.Fatalf("row after Kill and Start: %q, %v; want committed", v, err)
	}

	p.Stop(t)
	p.Stop(t) // a stopped server: nothing
	if !strings.Contains(logTail(p.LogFile, 200), "database system is shut down") {
		t.Errorf("log after Stop lacks the shutdown line:\n%s", logTail(p.LogFile, 20))
	}
}
