package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/test/testenv"
)

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// connect opens an admin connection to m as user; closed at cleanup.
func connect(t *testing.T, m *testenv.MariaDB, user, password string) *binlog.Source {
	t.Helper()
	return connectAt(t, m.Port, user, password)
}

// connectAt opens a source on 127.0.0.1:port.
func connectAt(t *testing.T, port int, user, password string) *binlog.Source {
	t.Helper()
	src, err := binlog.Connect(context.Background(), binlog.Config{
		Host: "127.0.0.1", Port: uint16(port), User: user, Password: password, ServerID: 1001,
	}, quietLog())
	if err != nil {
		t.Fatalf("connect to 127.0.0.1:%d as %s: %v", port, user, err)
	}
	t.Cleanup(src.Close)
	return src
}

// find returns the finding of check; it fails the test when there is none.
func find(t *testing.T, fs []Finding, check string) Finding {
	t.Helper()
	for _, f := range fs {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no %s finding in %+v", check, fs)
	return Finding{}
}

func has(fs []Finding, check string) bool {
	for _, f := range fs {
		if f.Check == check {
			return true
		}
	}
	return false
}

// expect asserts a finding's status and that its detail and fix contain
// the given strings.
func expect(t *testing.T, fs []Finding, check string, st Status, detail, fix string) Finding {
	t.Helper()
	f := find(t, fs, check)
	if f.Status != st {
		t.Errorf("%s: status %s, want %s (detail %q, fix %q)", check, f.Status, st, f.Detail, f.Fix)
	}
	if !strings.Contains(f.Detail, detail) {
		t.Errorf("%s: detail %q does not contain %q", check, f.Detail, detail)
	}
	if !strings.Contains(f.Fix, fix) {
		t.Errorf("%s: fix %q does not contain %q", check, f.Fix, fix)
	}
	if st == OK && f.Fix != "" {
		t.Errorf("%s: OK finding has a fix %q", check, f.Fix)
	}
	if st != OK && f.Fix == "" {
		t.Errorf("%s: %s finding has no fix", check, st)
	}
	return f
}

var sourceCheckNames = []string{CheckLogBin, CheckFormat, CheckRowImage, CheckRowMetadata, CheckCompression, CheckServerID, CheckGrants, CheckRetention, CheckDump}

func TestSourceBinlogOff(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{NoBinlog: true})
	fs := SourceChecks(t.Context(), connect(t, m, "root", ""), 1001, nil)
	expect(t, fs, CheckLogBin, FAIL, "binary logging is off", "log_bin=ON")
	if has(fs, CheckRetention) {
		t.Errorf("retention checked although binary logging is off: %+v", find(t, fs, CheckRetention))
	}
	expect(t, fs, CheckFormat, OK, "ROW", "")
}

func TestSourceStatementFormat(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{BinlogFormat: "STATEMENT"})
	fs := SourceChecks(t.Context(), connect(t, m, "root", ""), 1001, nil)
	expect(t, fs, CheckFormat, FAIL, "binlog_format is STATEMENT", "SET GLOBAL binlog_format='ROW'")
	expect(t, fs, CheckLogBin, OK, "ON", "")
}

func TestSourceMinimalImageNoMetadata(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{RowMetadata: "NO_LOG", ExtraArgs: []string{"--binlog-row-image=MINIMAL"}})
	fs := SourceChecks(t.Context(), connect(t, m, "root", ""), 1001, nil)
	expect(t, fs, CheckRowImage, WARN, "binlog_row_image is MINIMAL", "SET GLOBAL binlog_row_image='FULL'")
	expect(t, fs, CheckRowMetadata, FAIL, "binlog_row_metadata is NO_LOG", "SET GLOBAL binlog_row_metadata='FULL'")
	expect(t, fs, CheckFormat, OK, "ROW", "")
}

// TestSourceHealthy runs the source checks on a well configured server
// with the documented replication user, then breaks one thing at a time.
func TestSourceHealthy(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	m.CreateReplicationUser(t, "dbsync", "secret")
	src := connect(t, m, "dbsync", "secret")

	t.Run("all OK", func(t *testing.T) {
		fs := SourceChecks(t.Context(), src, 1001, nil)
		if len(fs) != len(sourceCheckNames) {
			t.Errorf("%d findings, want one per check %v: %+v", len(fs), sourceCheckNames, fs)
		}
		for _, name := range sourceCheckNames {
			f := find(t, fs, name)
			if f.Status != OK || f.Fix != "" {
				t.Errorf("%s: %s %q (fix %q), want OK without fix", name, f.Status, f.Detail, f.Fix)
			}
		}
		expect(t, fs, CheckGrants, OK, "'dbsync'@'%' has REPLICATION SLAVE, REPLICATION CLIENT and SELECT", "")
		// MariaDB's default: binlogs never expire.
		expect(t, fs, CheckRetention, OK, "binlogs never expire", "")
		// MariaDB lets only REPLICATION MASTER ADMIN list replicas.
		expect(t, fs, CheckServerID, OK, "server's server_id 1, Mysql.ServerID 1001; other replicas' server_ids not checked", "")
	})

	t.Run("a proxy that does not stream the binlog", func(t *testing.T) {
		proxy := testenv.StartMySQLProxy(t, m, testenv.MySQLProxyOptions{User: "dbsync", Password: "secret"})
		fs := SourceChecks(t.Context(), connectAt(t, proxy.Port, "dbsync", "secret"), 1001, nil)
		expect(t, fs, CheckDump, FAIL, "does not stream its binlog", "point Mysql.Host at the MySQL or MariaDB server itself")
	})

	t.Run("our server_id is the server's", func(t *testing.T) {
		fs := SourceChecks(t.Context(), src, 1, nil)
		expect(t, fs, CheckServerID, FAIL, "the server's own server_id is 1", "pick another Mysql.ServerID")
	})

	t.Run("user without REPLICATION SLAVE", func(t *testing.T) {
		m.Exec(t, "CREATE USER 'reader'@'%' IDENTIFIED BY 'pw'", "GRANT SELECT ON *.* TO 'reader'@'%'")
		fs := SourceChecks(t.Context(), connect(t, m, "reader", "pw"), 1001, nil)
		f := expect(t, fs, CheckGrants, FAIL, "REPLICATION SLAVE missing", "")
		if want := "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'reader'@'%'"; f.Fix != want {
			t.Errorf("grants fix %q, want %q", f.Fix, want)
		}
	})

	t.Run("SELECT on one database only", func(t *testing.T) {
		m.Exec(t, "CREATE DATABASE shop", "CREATE USER 'narrow'@'%' IDENTIFIED BY 'pw'",
			"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'narrow'@'%'", "GRANT SELECT ON shop.* TO 'narrow'@'%'")
		fs := SourceChecks(t.Context(), connect(t, m, "narrow", "pw"), 1001, nil)
		expect(t, fs, CheckGrants, WARN, "SELECT only on `shop`.*", "GRANT SELECT ON *.* TO 'narrow'@'%'")
	})

	t.Run("retention", func(t *testing.T) {
		m.Exec(t, "CREATE DATABASE ret", "CREATE TABLE ret.t (id INT PRIMARY KEY)", "INSERT INTO ret.t VALUES (1)",
			"FLUSH BINARY LOGS", "INSERT INTO ret.t VALUES (2)", "FLUSH BINARY LOGS", "INSERT INTO ret.t VALUES (3)")
		// MariaDB keeps a binlog until its binlog checkpoint has passed
		// (asynchronously), silently skipping it in PURGE until then.
		var files []binlog.BinlogFile
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			m.Exec(t, "PURGE BINARY LOGS TO 'mysql-bin.000002'")
			var err error
			files, err = src.BinaryLogs(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(files) == 2 && files[0].Name == "mysql-bin.000002" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("binary logs after purge: %+v", files)
			}
		}

		purged := position.Position{File: "mysql-bin.000001", Pos: 4}
		fs := SourceChecks(t.Context(), src, 1001, &purged)
		f := expect(t, fs, CheckRetention, FAIL, "the oldest binlog the server still has is mysql-bin.000002", "mysql-bin.000002:4")
		want := (&binlog.PurgedError{Pos: purged, Oldest: "mysql-bin.000002", Addr: m.Addr()}).Error()
		if f.Detail != want {
			t.Errorf("purged detail %q, want CheckResumable's wording %q", f.Detail, want)
		}

		cur, err := src.CurrentPosition(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		fs = SourceChecks(t.Context(), src, 1001, &cur)
		expect(t, fs, CheckRetention, OK, fmt.Sprintf("checkpoint %s is 0 bytes behind the current end of the binlog (0 later file(s))", cur), "")

		// The checkpoint in the oldest binlog while binlogs expire: the
		// next purge takes it.
		m.Exec(t, "SET GLOBAL binlog_expire_logs_seconds=2592000")
		t.Cleanup(func() { m.Exec(t, "SET GLOBAL binlog_expire_logs_seconds=0") })
		oldest := position.Position{File: "mysql-bin.000002", Pos: 4}
		fs = SourceChecks(t.Context(), src, 1001, &oldest)
		f = expect(t, fs, CheckRetention, WARN, "the checkpoint is in the oldest binlog left", "binlog_expire_logs_seconds")
		wantBehind := files[0].Size - 4 + files[1].Size
		if !strings.Contains(f.Detail, "(1 later file(s))") || !strings.Contains(f.Detail, byteSize(wantBehind)) {
			t.Errorf("retention detail %q does not say %s and 1 later file", f.Detail, byteSize(wantBehind))
		}
		expect(t, fs, CheckRetention, WARN, "binlogs expire after 720h0m0s (binlog_expire_logs_seconds=2592000)", "")

		// A short retention without a checkpoint.
		m.Exec(t, "SET GLOBAL binlog_expire_logs_seconds=3600")
		fs = SourceChecks(t.Context(), src, 1001, nil)
		expect(t, fs, CheckRetention, WARN, "a producer stopped for longer than 1h0m0s loses changes", "SET GLOBAL binlog_expire_logs_seconds=604800")
	})
}

// startReplica registers a replica with server id sid as user, streaming
// from the start of the first binlog; it is closed at cleanup.
func startReplica(t *testing.T, m *testenv.MariaDB, user, password string, sid uint32) *replication.BinlogSyncer {
	t.Helper()
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: sid, Flavor: mysql.MariaDBFlavor, Host: m.Host, Port: uint16(m.Port), User: user, Password: password,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	t.Cleanup(s.Close)
	if _, err := s.StartSync(mysql.Position{Name: "mysql-bin.000001", Pos: 4}); err != nil {
		t.Fatalf("start replica %d as %s: %v", sid, user, err)
	}
	return s
}

// waitServerID runs the server_id check until it has status st.
func waitServerID(t *testing.T, src *binlog.Source, st Status) Finding {
	t.Helper()
	var f Finding
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		f = find(t, SourceChecks(t.Context(), src, 1001, nil), CheckServerID)
		if f.Status == st {
			return f
		}
	}
	t.Fatalf("server_id finding %s %q (fix %q), want %s", f.Status, f.Detail, f.Fix, st)
	return f
}

func TestSourceServerIDClash(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	m.CreateReplicationUser(t, "dbsync", "secret")
	m.Exec(t, "CREATE USER 'admin'@'%' IDENTIFIED BY 'pw'",
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, REPLICATION MASTER ADMIN ON *.* TO 'admin'@'%'")
	admin := connect(t, m, "admin", "pw")
	expect(t, SourceChecks(t.Context(), admin, 1001, nil), CheckServerID, OK, "none of the 0 registered replica(s) uses it", "")

	// Another user's replica with a different id: no clash.
	other := startReplica(t, m, "root", "", 2002)
	f := waitServerID(t, admin, OK)
	if !strings.Contains(f.Detail, "none of the 1 registered replica(s)") {
		t.Errorf("server_id detail %q does not count the registered replica", f.Detail)
	}
	other.Close()

	// Another user's replica with our id: a real clash.
	clash := startReplica(t, m, "root", "", 1001)
	f = waitServerID(t, admin, FAIL)
	if !strings.Contains(f.Detail, "another replica uses server_id 1001") || !strings.Contains(f.Fix, "pick another Mysql.ServerID") {
		t.Errorf("clash finding %q, fix %q", f.Detail, f.Fix)
	}
	clash.Close()

	// Our own user streaming with our id: probably a running producer.
	startReplica(t, m, "admin", "pw", 1001)
	f = waitServerID(t, admin, WARN)
	if !strings.Contains(f.Detail, "a replica with our server_id is connected") || !strings.Contains(f.Detail, "probably a running producer") {
		t.Errorf("own-replica finding %q", f.Detail)
	}

	// Without REPLICATION MASTER ADMIN only our own dump threads are
	// visible: a running one is still reported.
	startReplica(t, m, "dbsync", "secret", 3003)
	f = waitServerID(t, connect(t, m, "dbsync", "secret"), WARN)
	if !strings.Contains(f.Detail, `a binlog dump for user "dbsync" is running`) {
		t.Errorf("dump-thread finding %q", f.Detail)
	}
}

// env is a MariaDB with the replication user and a config for it.
type env struct {
	m   *testenv.MariaDB
	dir string
	cfg map[string]any
}

func newEnv(t *testing.T) *env {
	t.Helper()
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	m.CreateReplicationUser(t, "dbsync", "secret")
	e := &env{m: m, dir: t.TempDir()}
	e.cfg = map[string]any{
		"Mysql":   map[string]any{"Host": m.Host, "Port": strconv.Itoa(m.Port), "Username": "dbsync", "Password": "secret", "ServerID": 1001},
		"Storage": map[string]any{"DaoName": "bolt", "PosKey": "key"},
		"Bolt":    map[string]any{"File": "pos.db", "Bucket": "pos", "Timeout": "200ms"},
		"DataDir": e.dir,
		"HTTP":    map[string]any{"Disabled": true},
	}
	return e
}

func (e *env) set(section string, v map[string]any) { e.cfg[section] = v }

func (e *env) config(t *testing.T) *config.Config {
	t.Helper()
	data, err := json.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(data, "test config", nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

func (e *env) run(t *testing.T) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Run(ctx, e.config(t), quietLog())
}

func (e *env) stan(s *testenv.Stan, port int) {
	e.cfg["MQName"] = "stan"
	e.set("Stan", map[string]any{"Host": "nats://" + s.Host, "Port": strconv.Itoa(port), "ClusterID": s.ClusterID, "ClientID": "dbsync-test"})
}

// boltSave writes pos as the checkpoint in the env's bolt file.
func (e *env) boltSave(t *testing.T, pos position.Position) {
	t.Helper()
	s, err := storage.OpenBolt(storage.BoltOptions{Path: filepath.Join(e.dir, "pos.db"), Bucket: "pos", Key: "key"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save(context.Background(), pos); err != nil {
		t.Fatal(err)
	}
}

func TestRunStan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := testenv.StartStan(t)
	e.stan(s, s.Port)
	boltFile := filepath.Join(e.dir, "pos.db")

	// First start: no checkpoint file (and Run does not create one).
	r := e.run(t)
	expect(t, r.Findings, CheckSource, OK, "connected to "+e.m.Addr()+` as "dbsync"`, "")
	expect(t, r.Findings, CheckBroker, OK, "NATS Streaming at "+s.URL()+`, cluster "test-cluster"`, "")
	expect(t, r.Findings, CheckCheckpoint, WARN, "no checkpoint yet in bolt file "+boltFile+": the producer will start at the server's current position", "Mysql.StartAt")
	expect(t, r.Findings, CheckRetention, OK, "no checkpoint yet", "")
	expect(t, r.Findings, CheckSourceTLS, WARN, `not encrypted (Mysql.TLS.Mode "preferred")`, "the server offers no TLS")
	if _, err := os.Stat(boltFile); !os.IsNotExist(err) {
		t.Errorf("Run created the checkpoint file %s (stat: %v)", boltFile, err)
	}
	if r.Failed() || r.Err() != nil {
		t.Errorf("healthy set-up failed: %v", r.Err())
	}
	for _, f := range r.Findings {
		if f.Status != OK && f.Check != CheckCheckpoint && f.Check != CheckSourceTLS {
			t.Errorf("%s: %s %q", f.Check, f.Status, f.Detail)
		}
	}
	var out bytes.Buffer
	r.Print(&out)
	t.Logf("report:\n%s", out.String())
	if want := fmt.Sprintf("%d OK, 2 WARN, 0 FAIL\n", len(r.Findings)-2); !strings.HasSuffix(out.String(), want) {
		t.Errorf("report does not end with %q", want)
	}

	// A table a snapshot cannot chunk is named (a unique key over a
	// nullable column does not count; one over NOT NULL columns does).
	expect(t, r.Findings, CheckSnapshot, OK, "every included table has a primary key or a unique key", "")
	e.m.Exec(t, "CREATE DATABASE nk", "CREATE TABLE nk.t (a INT, b INT NULL, UNIQUE KEY (b))",
		"CREATE TABLE nk.uniq (a INT NOT NULL, UNIQUE KEY (a))")
	r = e.run(t)
	if f := expect(t, r.Findings, CheckSnapshot, WARN, "1 included table(s) have no primary key", "add a primary key"); !strings.Contains(f.Detail, "nk.t") || strings.Contains(f.Detail, "nk.uniq") {
		t.Errorf("snapshot finding names the wrong tables: %s", f.Detail)
	}
	e.m.Exec(t, "DROP DATABASE nk")

	// A checkpoint at the current position.
	src := connect(t, e.m, "root", "")
	cur, err := src.CurrentPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e.boltSave(t, cur)
	r = e.run(t)
	expect(t, r.Findings, CheckCheckpoint, OK, fmt.Sprintf("checkpoint %s in bolt file %s", cur, boltFile), "")
	expect(t, r.Findings, CheckRetention, OK, fmt.Sprintf("checkpoint %s is 0 bytes behind", cur), "")

	// Held open by a running producer.
	held, err := storage.OpenBolt(storage.BoltOptions{Path: boltFile, Bucket: "pos", Key: "key"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = e.run(t)
	held.Close()
	expect(t, r.Findings, CheckCheckpoint, WARN, "is locked: a producer is running", "")
	if r.Failed() {
		t.Errorf("a locked checkpoint file failed the report: %v", r.Err())
	}

	// A checkpoint naming a purged binlog.
	e.boltSave(t, position.Position{File: "mysql-bin.000000", Pos: 4})
	r = e.run(t)
	expect(t, r.Findings, CheckRetention, FAIL, "checkpoint mysql-bin.000000:4 is not on MySQL at "+e.m.Addr(), "re-sync the consumers")

	// A garbled checkpoint file.
	if err := os.WriteFile(boltFile, bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.run(t)
	expect(t, r.Findings, CheckCheckpoint, FAIL, boltFile, "restore "+boltFile+" from a backup")
	expect(t, r.Findings, CheckRetention, OK, "no checkpoint yet", "")

	// The wrong cluster id.
	e.cfg["Stan"].(map[string]any)["ClusterID"] = "no-such-cluster"
	r = e.run(t)
	expect(t, r.Findings, CheckBroker, FAIL, `NATS Streaming cluster "no-such-cluster" did not accept a connection`, "Stan.ClusterID")
}

// TestRunFailures: everything unreachable or refused at once; Err and
// Print list every FAIL with its fix.
func TestRunFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := testenv.StartStan(t)
	deadPort := testenv.FreePort(t)
	e.stan(s, deadPort)
	e.cfg["Mysql"].(map[string]any)["Password"] = "wrong"
	if err := os.WriteFile(filepath.Join(e.dir, "pos.db"), []byte("not a bolt file, not at all; truncated garbage that fills a page?"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := e.run(t)
	deadURL := fmt.Sprintf("nats://127.0.0.1:%d", deadPort)
	expect(t, r.Findings, CheckSource, FAIL, `refused user "dbsync"`, "check Mysql.Username and Mysql.Password")
	expect(t, r.Findings, CheckBroker, FAIL, "cannot connect to NATS at "+deadURL, "Stan.Host and Stan.Port")
	expect(t, r.Findings, CheckCheckpoint, FAIL, "pos.db", "from a backup")
	if has(r.Findings, CheckLogBin) {
		t.Errorf("source checks ran without a source connection: %+v", r.Findings)
	}
	if !r.Failed() {
		t.Fatal("Failed() is false")
	}
	err := r.Err()
	if err == nil {
		t.Fatal("Err() is nil")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "preflight: 3 checks failed:") {
		t.Errorf("Err() = %q, want it to start with the count", msg)
	}
	for _, f := range r.Findings {
		if f.Status == FAIL && (!strings.Contains(msg, f.Check+": "+f.Detail) || !strings.Contains(msg, "fix: "+f.Fix)) {
			t.Errorf("Err() lacks the %s failure or its fix:\n%s", f.Check, msg)
		}
	}

	var out bytes.Buffer
	r.Print(&out)
	text := out.String()
	t.Logf("report:\n%s", text)
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "STATUS CHECK") {
		t.Errorf("no header line: %q", lines[0])
	}
	if want := "0 OK, 0 WARN, 3 FAIL"; lines[len(lines)-1] != want {
		t.Errorf("summary %q, want %q", lines[len(lines)-1], want)
	}
	for _, f := range r.Findings {
		row := fmt.Sprintf("%-6s %-10s %s", f.Status, f.Check, f.Detail)
		i := strings.Index(text, row+"\n")
		if i < 0 {
			t.Errorf("Print lacks the row %q", row)
			continue
		}
		next := text[i+len(row)+1:]
		if want := strings.Repeat(" ", 18) + "fix: " + f.Fix + "\n"; !strings.HasPrefix(next, want) {
			t.Errorf("the %s row is not followed by its fix %q", f.Check, want)
		}
	}

	// Nothing listens on the MySQL port.
	e.cfg["Mysql"].(map[string]any)["Port"] = strconv.Itoa(testenv.FreePort(t))
	e.cfg["Mysql"].(map[string]any)["ConnectTimeout"] = "2s"
	r = e.run(t)
	expect(t, r.Findings, CheckSource, FAIL, "connect to MySQL at", "check that the server is up and reachable")
}

func TestRunJetStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := testenv.StartNATS(t)
	e.cfg["MQName"] = "jetstream"
	e.set("JetStream", map[string]any{"URL": n.URL(), "Stream": "DOCTOR"})
	r := e.run(t)
	expect(t, r.Findings, CheckBroker, OK, "NATS with JetStream at "+n.URL()+"; stream DOCTOR will be created by the producer", "")
	js, err := jetstream.New(n.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(context.Background(), "DOCTOR"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream DOCTOR after Run: %v, want ErrStreamNotFound (Run must not create it)", err)
	}

	// A stream someone created without bounds: it would fill the volume.
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "DOCTOR", Subjects: []string{"dbsync.*.*"}}); err != nil {
		t.Fatal(err)
	}
	r = e.run(t)
	expect(t, r.Findings, CheckBroker, WARN, "stream \"DOCTOR\" keeps every message forever", "bound the stream")
	if err := js.DeleteStream(context.Background(), "DOCTOR"); err != nil {
		t.Fatal(err)
	}

	// The embedded broker is the producer's business.
	e.set("JetStream", map[string]any{"Listen": "127.0.0.1:1"})
	r = e.run(t)
	expect(t, r.Findings, CheckBroker, OK, "embedded broker (started by the producer on 127.0.0.1:1", "")

	// Redis as the checkpoint store.
	red := testenv.StartRedis(t)
	host, port, _ := strings.Cut(red.Addr(), ":")
	e.set("Storage", map[string]any{"DaoName": "redis", "PosKey": "doctor-key"})
	e.set("Redis", map[string]any{"Host": host, "Port": port})
	r = e.run(t)
	expect(t, r.Findings, CheckCheckpoint, WARN, "no checkpoint yet in redis at "+red.Addr(), "")
	if err := red.Client(t).Set(context.Background(), "doctor-key", "{garbled", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r = e.run(t)
	expect(t, r.Findings, CheckCheckpoint, FAIL, "doctor-key", "restore the checkpoint")
	if r.Err() == nil || !strings.Contains(r.Err().Error(), "checkpoint: ") {
		t.Errorf("Err() = %v, want the checkpoint failure", r.Err())
	}
}
