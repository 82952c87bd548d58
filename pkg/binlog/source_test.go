package binlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestSourceBehindAProxy: a SQL proxy in front of MariaDB answers queries
// but not the replication protocol, and hides BINLOG_GTID_POS(). The dump
// probe and the history check each fail with a FatalError that says what
// the server lacks, instead of a retry loop; the real server passes both.
func TestSourceBehindAProxy(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	db.CreateReplicationUser(t, "dbsync", "secret")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	connect := func(port int) *Source {
		src, err := Connect(ctx, Config{Host: "127.0.0.1", Port: uint16(port), User: "dbsync", Password: "secret", ServerID: 1001}, logrus.New())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(src.Close)
		return src
	}
	direct := connect(db.Port)
	db.Exec(t, "CREATE DATABASE p", "CREATE TABLE p.t (id INT PRIMARY KEY)", "INSERT INTO p.t VALUES (1)")
	cp, err := direct.CurrentPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := direct.ProbeDump(ctx); err != nil {
		t.Fatalf("dump probe against MariaDB itself: %v", err)
	}
	if err := direct.CheckResumable(t.Context(), cp); err != nil {
		t.Fatalf("history check against MariaDB itself: %v", err)
	}

	proxy := testenv.StartMySQLProxy(t, db, testenv.MySQLProxyOptions{User: "dbsync", Password: "secret", RefuseFunction: "BINLOG_GTID_POS"})
	viaProxy := connect(proxy.Port)
	err = viaProxy.ProbeDump(ctx)
	if !failure.IsPermanent(err) || !strings.Contains(err.Error(), "does not stream its binlog") || !strings.Contains(err.Error(), "command not implemented") {
		t.Fatalf("dump probe through the proxy: %v; want a FatalError saying the server does not stream its binlog", err)
	}
	err = viaProxy.CheckResumable(t.Context(), cp)
	if !failure.IsPermanent(err) || !strings.Contains(err.Error(), "lacks the function BINLOG_GTID_POS()") {
		t.Fatalf("history check through the proxy: %v; want a FatalError naming BINLOG_GTID_POS()", err)
	}
}

// TestCurrentFilePositionRunsNoGTIDLookup: the monitor polls the binlog's
// end every few seconds and every snapshot chunk reads it twice, so it must
// not run BINLOG_GTID_POS (a SELECT that makes MariaDB read the binlog file
// from its start): the server's Com_select stays where it was, and the
// position is CurrentPosition's without the GTID state.
func TestCurrentFilePositionRunsNoGTIDLookup(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	db.Exec(t, "CREATE DATABASE f", "CREATE TABLE f.t (id INT PRIMARY KEY)", "INSERT INTO f.t VALUES (1)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, src, _ := connectTest(ctx, t, db)
	selects := func() string {
		var name, value string
		if err := db.DB(t).QueryRow("SHOW GLOBAL STATUS LIKE 'Com_select'").Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		return value
	}
	before := selects()
	var (
		got position.Position
		err error
	)
	for range 5 {
		if got, err = src.CurrentFilePosition(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if after := selects(); after != before {
		t.Errorf("5 calls of CurrentFilePosition ran SELECTs (Com_select %s → %s): the GTID lookup reads the binlog file from its start", before, after)
	}
	full, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.File != full.File || got.Pos != full.Pos || got.GTID != "" || full.GTID == "" {
		t.Errorf("CurrentFilePosition = %+v, CurrentPosition = %+v: want the same file and offset, the GTID state only in the latter", got, full)
	}
}
