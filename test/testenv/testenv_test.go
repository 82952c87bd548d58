package testenv

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// showVariable returns the value of a server variable.
func showVariable(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var n, v string
	if err := db.QueryRow("SHOW VARIABLES LIKE "+sqlString(name)).Scan(&n, &v); err != nil {
		t.Fatalf("SHOW VARIABLES LIKE %q: %v", name, err)
	}
	return v
}

func TestFreePortIsBindable(t *testing.T) {
	t.Parallel()
	// Another process may take a returned port at any time, so one bindable
	// port out of three tries is the promise checked here.
	var errs []error
	for range 3 {
		port := FreePort(t)
		if port <= 0 || port > 65535 {
			t.Fatalf("FreePort = %d, want a TCP port", port)
		}
		if low := ephemeralPortLow(); low > 11000 && port >= low {
			t.Errorf("FreePort = %d, want a port below the ephemeral range starting at %d", port, low)
		}
		l, err := net.Listen("tcp", addr("127.0.0.1", port))
		if err == nil {
			_ = l.Close()
			return
		}
		errs = append(errs, err)
	}
	t.Fatalf("no port from FreePort was bindable: %v", errs)
}

func TestMariaDBBinlogOn(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t, MariaDBOptions{})
	if m.Host != "127.0.0.1" || m.User != "root" || m.Password != "" {
		t.Fatalf("MariaDB = %+v, want root with empty password on 127.0.0.1", m)
	}
	db := m.DB(t)
	for name, want := range map[string]string{
		"log_bin":              "ON",
		"binlog_format":        "ROW",
		"binlog_row_image":     "FULL",
		"binlog_row_metadata":  "FULL",
		"server_id":            "1",
		"character_set_server": "utf8mb4",
		"port":                 fmt.Sprint(m.Port),
		"log_bin_basename":     m.DataDir + "/mysql-bin",
	} {
		if got := showVariable(t, db, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	var file string
	var pos int64
	var doDB, ignoreDB string
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatalf("SHOW MASTER STATUS: %v", err)
	}
	if !strings.HasPrefix(file, "mysql-bin.") {
		t.Errorf("binlog file = %q, want mysql-bin.NNNNNN", file)
	}

	// The replication user can log in with its password and has its grants.
	m.CreateReplicationUser(t, "repl", "s3cret'pw")
	rdb, err := sql.Open("mysql", dsnAs(t, m, "repl", "s3cret'pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var grants []string
	rows, err := rdb.Query("SHOW GRANTS")
	if err != nil {
		t.Fatalf("SHOW GRANTS as repl: %v", err)
	}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		grants = append(grants, g)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(grants, "\n")
	for _, want := range []string{"SELECT", "REPLICATION SLAVE", "BINLOG MONITOR"} {
		if !strings.Contains(all, want) {
			t.Errorf("grants of repl = %q, want %s", all, want)
		}
	}
	// Grants are enforced (no --skip-grant-tables): repl cannot create.
	if _, err := rdb.Exec("CREATE DATABASE nope"); err == nil {
		t.Errorf("repl could CREATE DATABASE; grants are not enforced")
	}
	// A wrong password is refused.
	bad, err := sql.Open("mysql", dsnAs(t, m, "repl", "wrong"))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(); err == nil {
		t.Errorf("repl logged in with a wrong password")
	}
}

// dsnAs is m.DSN("") for another user.
func dsnAs(t *testing.T, m *MariaDB, user, password string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(m.DSN(""))
	if err != nil {
		t.Fatalf("parse DSN %q: %v", m.DSN(""), err)
	}
	cfg.User, cfg.Passwd = user, password
	return cfg.FormatDSN()
}

func TestMariaDBNoBinlogAndOptions(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t, MariaDBOptions{NoBinlog: true, BinlogFormat: "MIXED", RowMetadata: "MINIMAL",
		ExtraArgs: []string{"--binlog-row-image=MINIMAL"}})
	db := m.DB(t)
	for name, want := range map[string]string{
		"log_bin":             "OFF",
		"binlog_format":       "MIXED",
		"binlog_row_metadata": "MINIMAL",
		"binlog_row_image":    "MINIMAL",
	} {
		if got := showVariable(t, db, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestMariaDBStopStartKeepsData(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t, MariaDBOptions{})
	m.Exec(t,
		"CREATE DATABASE shop",
		"USE shop",
		"CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(20))",
		"INSERT INTO orders VALUES (1, 'new'), (2, 'paid')",
	)
	port := m.Port
	m.Stop(t)
	if c, err := net.DialTimeout("tcp", m.Addr(), time.Second); err == nil {
		_ = c.Close()
		t.Fatalf("%s still accepts connections after Stop", m.Addr())
	}
	m.Stop(t) // stopping twice is a no-op
	m.Start(t)
	if m.Port != port {
		t.Fatalf("port changed across restart: %d -> %d", port, m.Port)
	}
	db, err := sql.Open("mysql", m.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var statuses string
	if err := db.QueryRow("SELECT COUNT(*), GROUP_CONCAT(status ORDER BY id) FROM orders").Scan(&n, &statuses); err != nil {
		t.Fatalf("query after restart: %v", err)
	}
	if n != 2 || statuses != "new,paid" {
		t.Fatalf("after restart orders = %d rows %q, want 2 rows \"new,paid\"", n, statuses)
	}
	// A restart rotates the binary log: there are now two files.
	rows, err := db.Query("SHOW BINARY LOGS")
	if err != nil {
		t.Fatalf("SHOW BINARY LOGS: %v", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var files []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		files = append(files, fmt.Sprintf("%s", vals[0]))
	}
	if len(files) < 2 {
		t.Errorf("binary logs after restart = %v, want at least 2", files)
	}
	// Exec works again after the restart.
	m.Exec(t, "INSERT INTO shop.orders VALUES (3, 'shipped')")
}

func TestMariaDBExecNamesFailingStatement(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t, MariaDBOptions{})
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		m.Exec(ft, "SELECT 1", "SELEC nonsense")
	}()
	if !strings.Contains(ft.msg, "SELEC nonsense") {
		t.Fatalf("Exec failure message = %q, want it to name the statement", ft.msg)
	}
}

func TestMariaDBStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		StartMariaDB(ft, MariaDBOptions{ExtraArgs: []string{"--no-such-option-testenv"}})
	}()
	if !strings.Contains(ft.msg, "no-such-option-testenv") || !strings.Contains(ft.msg, "mariadb.err") {
		t.Fatalf("start failure message = %q, want the error log tail naming the bad option", ft.msg)
	}
}

// fatalRecorder captures Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}

func (f *fatalRecorder) Helper() {}

func TestRedis(t *testing.T) {
	t.Parallel()
	r := StartRedis(t)
	ctx := context.Background()
	c := r.Client(t)
	if err := c.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v1" {
		t.Fatalf("GET = %q, %v; want v1", got, err)
	}
	r.Stop(t)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING answered after Stop")
	}
	r.Start(t)
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v1" {
		t.Fatalf("GET after Stop/Start = %q, %v; want v1 (Stop saves the data set)", got, err)
	}
	r.Kill(t)
	r.Start(t)
	if err := c.Set(ctx, "k2", "x", 0).Err(); err != nil {
		t.Fatalf("SET after Kill/Start: %v", err)
	}
}

func TestRedisPassword(t *testing.T) {
	t.Parallel()
	r := StartRedisWithPassword(t, "pw")
	ctx := context.Background()
	noAuth := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer noAuth.Close()
	if err := noAuth.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without password = %v, want NOAUTH", err)
	}
	if err := r.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING with password: %v", err)
	}
}

func TestStan(t *testing.T) {
	t.Parallel()
	s := StartStan(t)
	if s.URL() != fmt.Sprintf("nats://127.0.0.1:%d", s.Port) || s.ClusterID != "test-cluster" {
		t.Fatalf("URL %q cluster %q", s.URL(), s.ClusterID)
	}
	if got := s.Channels(t); len(got) != 0 {
		t.Fatalf("Channels of a new server = %v, want none", got)
	}
	if got := s.ReadChannel(t, "nothing.here"); len(got) != 0 {
		t.Fatalf("ReadChannel of a missing channel = %q, want none", got)
	}
	sc := s.Conn(t, "producer-1")
	var want [][]byte
	for i := range 300 {
		msg := []byte(fmt.Sprintf("msg-%03d", i))
		subject := "shop.orders"
		if i%3 == 0 {
			subject = "shop.items"
		} else {
			want = append(want, msg)
		}
		if err := sc.Publish(subject, msg); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if got := s.ReadChannel(t, "shop.orders"); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadChannel = %d messages %q..., want %d", len(got), head(got), len(want))
	}
	if got := s.ChannelCount(t, "shop.items"); got != 100 {
		t.Fatalf("ChannelCount(shop.items) = %d, want 100", got)
	}
	if got := s.Channels(t); !slices.Equal(got, []string{"shop.items", "shop.orders"}) {
		t.Fatalf("Channels = %v", got)
	}
	_ = sc.Close()

	s.Shutdown(t)
	if c, err := net.DialTimeout("tcp", addr(s.Host, s.Port), time.Second); err == nil {
		_ = c.Close()
		t.Fatalf("%s still accepts connections after Shutdown", s.URL())
	}
	s.Restart(t)
	if got := s.ReadChannel(t, "shop.orders"); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadChannel after restart = %d messages, want %d", len(got), len(want))
	}
	// Publishing continues the sequence after the restart.
	sc2 := s.Conn(t, "producer-1")
	if err := sc2.Publish("shop.orders", []byte("after")); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	got := s.ReadChannel(t, "shop.orders")
	if len(got) != len(want)+1 || string(got[len(got)-1]) != "after" {
		t.Fatalf("ReadChannel after new publish = %d messages, last %q", len(got), got[len(got)-1])
	}
}

// TestStanDeadClientIDReusable checks that a client that vanished without
// closing (its NATS connection dropped) does not block its client ID.
func TestStanDeadClientIDReusable(t *testing.T) {
	t.Parallel()
	s := StartStan(t)
	sc := s.Conn(t, "dup-id")
	// Drop the underlying NATS connection without the stan close protocol,
	// as a kill -9 would.
	sc.NatsConn().Close()
	began := time.Now()
	sc2 := s.Conn(t, "dup-id")
	if err := sc2.Publish("x", []byte("1")); err != nil {
		t.Fatalf("publish with reused client id: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("reconnect with the same client id took %s", d)
	}
	// A live client with the same ID is still refused.
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		s.Conn(ft, "dup-id")
	}()
	if !strings.Contains(ft.msg, "already registered") {
		t.Fatalf("second live connection as dup-id: failure %q, want \"clientID already registered\"", ft.msg)
	}
}

func head(b [][]byte) []string {
	var out []string
	for i := 0; i < len(b) && i < 3; i++ {
		out = append(out, string(b[i]))
	}
	return out
}

func TestNATSJetStreamRestartKeepsData(t *testing.T) {
	t.Parallel()
	n := StartNATS(t)
	nc := n.Conn(t)
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish("t.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	n.Shutdown(t)
	n.Restart(t)
	nc2 := n.Conn(t)
	js2, _ := nc2.JetStream()
	info, err := js2.StreamInfo("T")
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages after restart, want 1", info.State.Msgs)
	}
}

// TestPKI: a client trusting one PKI accepts its server certificate for
// 127.0.0.1 and rejects another PKI's.
func TestPKI(t *testing.T) {
	a, b := NewPKI(t), NewPKI(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", a.ServerTLS(t, true))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	good := a.ClientTLS(t)
	c, err := tls.Dial("tcp", l.Addr().String(), good)
	if err != nil {
		t.Fatalf("a client of the same PKI: %v", err)
	}
	if na := c.ConnectionState().PeerCertificates[0].NotAfter; !na.Equal(a.NotAfter) {
		t.Errorf("server certificate expires %v, want %v", na, a.NotAfter)
	}
	c.Close()
	if c, err := tls.Dial("tcp", l.Addr().String(), b.ClientTLS(t)); err == nil {
		c.Close()
		t.Fatal("a client of another PKI accepted the server")
	}
}
