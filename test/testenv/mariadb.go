package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

const (
	mariadbStartTimeout = 60 * time.Second
	mariadbStopTimeout  = 60 * time.Second
	// startAttempts is how many free ports a first start tries before it gives
	// up, in case another process takes the probed port first.
	startAttempts = 3
)

// MariaDBOptions configures StartMariaDB. The zero value is a server with
// binary logging on, binlog_format=ROW and binlog_row_metadata=FULL.
type MariaDBOptions struct {
	// NoBinlog starts the server with binary logging off (for negative tests).
	NoBinlog bool
	// BinlogFormat is binlog_format; "" means "ROW".
	BinlogFormat string
	// RowMetadata is binlog_row_metadata; "" means "FULL".
	RowMetadata string
	// TLS, when set, starts the server with TLS: its certificate and key
	// are the PKI's server certificate (for 127.0.0.1 and localhost), its
	// CA the PKI's CA. The package's own clients (DSN, DB, Exec) then
	// connect with TLS, not checking the certificate.
	TLS *PKI
	// RequireSecureTransport sets require_secure_transport=ON: the server
	// refuses unencrypted TCP connections. It needs TLS.
	RequireSecureTransport bool
	// ExtraArgs are appended to the mariadbd command line, after the
	// package's own options, so they override them (e.g.
	// "--binlog-row-image=MINIMAL", "--default-time-zone=+05:00").
	ExtraArgs []string
}

// MariaDB is a mariadbd started by StartMariaDB. Host, Port, User and
// Password are what a client connects with: root with an empty password over
// TCP on 127.0.0.1. The binary logs are DataDir/mysql-bin.NNNNNN.
type MariaDB struct {
	Host     string
	Port     int
	User     string
	Password string
	DataDir  string
	// LogFile is the server's error log (--log-error).
	LogFile string

	opts    MariaDBOptions
	bin     string
	sockDir string
	tmpDir  string
	outFile string

	mu   sync.Mutex
	proc *Child
	db   *sql.DB // pool used by Exec; closed at Stop and cleanup
}

// StartMariaDB initialises a fresh datadir with mariadb-install-db and starts
// mariadbd on a free loopback port, returning once it accepts connections.
// The server is killed and its files removed at test cleanup. It fails the
// test when a binary is missing, the datadir cannot be initialised, or the
// server does not accept connections within 60s (the message includes the
// end of the server's error log).
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	bin := findBinary("mariadbd", "mysqld")
	if bin == "" {
		t.Fatalf("mariadbd not found (looked in PATH and %s): install the mariadb-server package (scripts/test.sh does this)",
			strings.Join(binDirs, ", "))
	}
	installDB := findBinary("mariadb-install-db", "mysql_install_db")
	if installDB == "" {
		t.Fatalf("mariadb-install-db not found (looked in PATH and %s): install the mariadb-server package (scripts/test.sh does this)",
			strings.Join(binDirs, ", "))
	}
	if opts.RequireSecureTransport && opts.TLS == nil {
		t.Fatalf("testenv: MariaDBOptions.RequireSecureTransport needs TLS (a PKI)")
	}
	if opts.BinlogFormat == "" {
		opts.BinlogFormat = "ROW"
	}
	if opts.RowMetadata == "" {
		opts.RowMetadata = "FULL"
	}
	dir := t.TempDir()
	m := &MariaDB{
		Host:    "127.0.0.1",
		User:    "root",
		DataDir: filepath.Join(dir, "data"),
		LogFile: filepath.Join(dir, "mariadb.err"),
		opts:    opts,
		bin:     bin,
		sockDir: shortTempDir(t, "mdb"),
		outFile: filepath.Join(dir, "mariadbd.out"),
	}

	// A private tmpdir: concurrent servers sharing /tmp have been seen to
	// lose each other's temporary tables during mariadb-install-db.
	m.tmpDir = filepath.Join(dir, "tmp")
	if err := os.Mkdir(m.tmpDir, 0o700); err != nil {
		t.Fatalf("testenv: create mariadb tmpdir: %v", err)
	}

	began := time.Now()
	installLog := filepath.Join(dir, "install-db.log")
	cmd := exec.Command(installDB,
		"--no-defaults",
		"--datadir="+m.DataDir,
		"--tmpdir="+m.tmpDir,
		"--user="+currentUserName(),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=16M",
		"--innodb-use-native-aio=0",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.WriteFile(installLog, out, 0o644)
		t.Fatalf("testenv: %s --datadir=%s failed: %v\n%s", installDB, m.DataDir, err, tailString(string(out), 40))
	}
	installed := time.Since(began)

	t.Cleanup(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.closeDBLocked()
		if m.proc != nil {
			m.proc.Kill()
		}
	})

	for attempt := 1; ; attempt++ {
		m.Port = FreePort(t)
		err := m.start()
		if err == nil {
			break
		}
		if attempt < startAttempts && strings.Contains(err.Error(), "already in use") {
			t.Logf("testenv: mariadb port %d was taken, retrying with another port", m.Port)
			continue
		}
		t.Fatalf("testenv: start mariadb: %v", err)
	}
	t.Logf("testenv: mariadb on %s started in %s (install-db %s), binlog=%v format=%s row_metadata=%s tls=%v require_secure_transport=%v",
		addr(m.Host, m.Port), time.Since(began).Round(time.Millisecond), installed.Round(time.Millisecond),
		!opts.NoBinlog, opts.BinlogFormat, opts.RowMetadata, opts.TLS != nil, opts.RequireSecureTransport)
	return m
}

// currentUserName is the user mariadbd runs as: root when the tests run as
// root (mariadbd refuses to run as root without --user=root), else the
// current user.
func currentUserName() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Geteuid())
}

// args is the mariadbd command line.
func (m *MariaDB) args() []string {
	a := []string{
		"--no-defaults",
		"--user=" + currentUserName(),
		"--datadir=" + m.DataDir,
		"--tmpdir=" + m.tmpDir,
		"--bind-address=" + m.Host,
		"--port=" + strconv.Itoa(m.Port),
		"--socket=" + filepath.Join(m.sockDir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(m.sockDir, "mysqld.pid"),
		"--log-error=" + m.LogFile,
		"--server-id=1",
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=16M",
		"--innodb-use-native-aio=0",
		"--innodb-flush-log-at-trx-commit=2",
		"--innodb-doublewrite=0",
		"--sync-binlog=0",
		"--max-allowed-packet=64M",
		"--max-connections=300",
		"--binlog-format=" + m.opts.BinlogFormat,
		"--binlog-row-image=FULL",
		"--binlog-row-metadata=" + m.opts.RowMetadata,
	}
	if p := m.opts.TLS; p != nil {
		a = append(a, "--ssl-ca="+p.CA, "--ssl-cert="+p.ServerCert, "--ssl-key="+p.ServerKey)
	}
	if m.opts.RequireSecureTransport {
		a = append(a, "--require-secure-transport=ON")
	}
	if m.opts.NoBinlog {
		a = append(a, "--skip-log-bin")
	} else {
		a = append(a, "--log-bin=mysql-bin")
	}
	return append(a, m.opts.ExtraArgs...)
}

// start launches mariadbd on m.Port and waits until it accepts connections.
// On failure the process is gone and the error carries the log tail.
func (m *MariaDB) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.Exited() {
		return fmt.Errorf("mariadb on port %d is already running", m.Port)
	}
	logOffset := fileSize(m.LogFile)
	p, err := StartChildLogging(m.outFile, m.bin, m.args()...)
	if err != nil {
		return err
	}
	m.proc = p

	fail := func(format string, args ...any) error {
		p.Kill()
		msg := fmt.Sprintf(format, args...)
		newLog := readFrom(m.LogFile, logOffset)
		if strings.Contains(newLog, "Address already in use") {
			msg += " (port already in use)"
		}
		return fmt.Errorf("%s\ncommand: %s %s\n%s\n%s", msg, m.bin, strings.Join(m.args(), " "),
			logTail(m.LogFile, 40), logTail(m.outFile, 10))
	}

	db, err := sql.Open("mysql", m.dsn("", "timeout=2s"))
	if err != nil {
		return fail("open client: %v", err)
	}
	defer db.Close()
	deadline := time.Now().Add(mariadbStartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fail("mariadbd %s before accepting connections", p.ExitStatus())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lastErr = db.PingContext(ctx)
		cancel()
		if lastErr == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fail("mariadbd did not accept connections on %s within %s (last error: %v)",
		addr(m.Host, m.Port), mariadbStartTimeout, lastErr)
}

// dsn builds a go-sql-driver/mysql DSN for root on database db, with extra
// "key=value" parameters.
func (m *MariaDB) dsn(db string, extra ...string) string {
	cfg := mysql.NewConfig()
	cfg.User = m.User
	cfg.Passwd = m.Password
	cfg.Net = "tcp"
	cfg.Addr = addr(m.Host, m.Port)
	cfg.DBName = db
	cfg.ParseTime = false
	cfg.MultiStatements = true
	if m.opts.TLS != nil {
		cfg.TLSConfig = "skip-verify"
	}
	dsn := cfg.FormatDSN()
	for _, kv := range extra {
		if strings.Contains(dsn, "?") {
			dsn += "&" + kv
		} else {
			dsn += "?" + kv
		}
	}
	return dsn
}

// DSN returns a go-sql-driver/mysql DSN for root on database db ("" for
// none), with parseTime=false and multiStatements=true (and tls=skip-verify
// when the server was started with TLS).
func (m *MariaDB) DSN(db string) string {
	return m.dsn(db)
}

// Addr returns "127.0.0.1:PORT".
func (m *MariaDB) Addr() string {
	return addr(m.Host, m.Port)
}

// DB returns a new root connection pool to no particular database, verified
// with a ping, and closed at test cleanup. It fails the test when the server
// does not answer.
func (m *MariaDB) DB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		t.Fatalf("testenv: open mariadb %s: %v", m.Addr(), err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("testenv: ping mariadb %s: %v", m.Addr(), err)
	}
	return db
}

// Exec runs each statement in order as root on one connection (so USE and
// session variables carry from one statement to the next within the call).
// It fails the test naming the statement that failed.
func (m *MariaDB) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	m.mu.Lock()
	if m.db == nil {
		db, err := sql.Open("mysql", m.DSN(""))
		if err != nil {
			m.mu.Unlock()
			t.Fatalf("testenv: open mariadb %s: %v", m.Addr(), err)
		}
		m.db = db
	}
	db := m.db
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("testenv: connect to mariadb %s: %v", m.Addr(), err)
	}
	defer conn.Close()
	for _, stmt := range stmts {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("testenv: mariadb %s: exec %q: %v", m.Addr(), stmt, err)
		}
	}
}

// closeDBLocked closes the Exec pool; m.mu must be held.
func (m *MariaDB) closeDBLocked() {
	if m.db != nil {
		_ = m.db.Close()
		m.db = nil
	}
}

// Stop shuts the server down cleanly (SIGTERM, as mysqladmin shutdown
// would) and waits for it to exit, keeping the datadir and binary logs.
// Stopping a stopped server does nothing. It fails the test when the server
// does not exit within 60s (it is then killed).
func (m *MariaDB) Stop(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeDBLocked()
	if m.proc == nil || m.proc.Exited() {
		return
	}
	began := time.Now()
	if err := m.proc.Stop(syscall.SIGTERM, mariadbStopTimeout); err != nil {
		t.Fatalf("testenv: stop mariadb %s: %v\n%s", m.Addr(), err, logTail(m.LogFile, 30))
	}
	t.Logf("testenv: mariadb on %s stopped in %s", m.Addr(), time.Since(began).Round(time.Millisecond))
}

// Kill stops the server with SIGKILL (a crash), keeping the datadir; Start
// then runs crash recovery.
func (m *MariaDB) Kill(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeDBLocked()
	if m.proc != nil {
		m.proc.Kill()
	}
}

// Start starts a stopped server again on the same port and datadir and
// waits until it accepts connections. It fails the test when the server is
// running or does not come up within 60s.
func (m *MariaDB) Start(t testing.TB) {
	t.Helper()
	began := time.Now()
	if err := m.start(); err != nil {
		t.Fatalf("testenv: restart mariadb: %v", err)
	}
	t.Logf("testenv: mariadb on %s restarted in %s", m.Addr(), time.Since(began).Round(time.Millisecond))
}

// StartWith is Start with extraArgs appended to the command line from now
// on (e.g. "--log-bin=binlog" to rename the binary logs).
func (m *MariaDB) StartWith(t testing.TB, extraArgs ...string) {
	t.Helper()
	m.mu.Lock()
	m.opts.ExtraArgs = append(append([]string(nil), m.opts.ExtraArgs...), extraArgs...)
	m.mu.Unlock()
	m.Start(t)
}

// CreateReplicationUser creates user@'%' identified by password with the
// privileges a binlog reader needs: REPLICATION SLAVE, REPLICATION CLIENT
// and SELECT on *.*. It fails the test on any error.
func (m *MariaDB) CreateReplicationUser(t testing.TB, user, password string) {
	t.Helper()
	u := sqlString(user)
	m.Exec(t,
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY %s", u, sqlString(password)),
		fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO %s@'%%'", u),
	)
}

// sqlString quotes s as a SQL string literal.
func sqlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// fileSize returns the size of the file at path, 0 when it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns the content of path from offset on ("" on error).
func readFrom(path string, offset int64) string {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return ""
	}
	return string(data[offset:])
}

// tailString returns the last n lines of s.
func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// StartMariaDBReplica starts a second server that replicates primary by
// GTID (MASTER_USE_GTID=slave_pos) from the start of primary's binlog, as
// a replica that can be promoted: server_id 2, its own binlog base name
// replica-bin, log_slave_updates=ON and gtid_strict_mode=ON. It returns
// once replication runs. opts.ExtraArgs come after those (e.g.
// "--log-slave-updates=OFF").
func StartMariaDBReplica(t testing.TB, primary *MariaDB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	opts.ExtraArgs = append([]string{"--server-id=2", "--log-bin=replica-bin", "--log-slave-updates=ON", "--gtid-strict-mode=ON"}, opts.ExtraArgs...)
	r := StartMariaDB(t, opts)
	r.Exec(t,
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			sqlString(primary.Host), primary.Port, sqlString(primary.User), sqlString(primary.Password)),
		"START SLAVE")
	r.WaitCaughtUp(t, primary)
	return r
}

// WaitCaughtUp waits (up to a minute) until the replica m has applied
// everything primary's binlog holds now; it fails the test with the
// replica's SHOW SLAVE STATUS errors when it does not.
func (m *MariaDB) WaitCaughtUp(t testing.TB, primary *MariaDB) {
	t.Helper()
	var pos string
	if err := primary.DB(t).QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatalf("testenv: primary %s gtid_binlog_pos: %v", primary.Addr(), err)
	}
	var got sql.NullInt64
	if err := m.DB(t).QueryRow("SELECT MASTER_GTID_WAIT(?, 60)", pos).Scan(&got); err != nil || !got.Valid || got.Int64 != 0 {
		var ioErr, sqlErr string
		_ = m.DB(t).QueryRow("SELECT COALESCE(MAX(Last_IO_Error),''), COALESCE(MAX(Last_SQL_Error),'') FROM information_schema.SLAVE_STATUS").Scan(&ioErr, &sqlErr)
		t.Fatalf("testenv: replica %s did not reach primary's GTID position %s within 60s (result %v, %v): io error %q, sql error %q",
			m.Addr(), pos, got, err, ioErr, sqlErr)
	}
}

// Promote makes the replica m a primary: replication stopped and
// forgotten (STOP SLAVE; RESET SLAVE ALL).
func (m *MariaDB) Promote(t testing.TB) {
	t.Helper()
	m.Exec(t, "STOP SLAVE", "RESET SLAVE ALL")
}
