package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	postgresStartTimeout = 60 * time.Second
	postgresStopTimeout  = 60 * time.Second
	// postgresRootUser is who the server runs as when the tests run as
	// root: initdb and postgres refuse to run as root.
	postgresRootUser = "postgres"
)

// postgresBinGlob is where Debian's postgresql package puts initdb and
// postgres (not in PATH).
const postgresBinGlob = "/usr/lib/postgresql/*/bin"

// Postgres is a PostgreSQL server started by StartPostgres, listening on
// Host:Port (127.0.0.1) with trust authentication: User ("postgres", the
// superuser) connects without a password. Its unix socket is in SocketDir.
type Postgres struct {
	Host string
	Port int
	User string
	// DataDir is the cluster's data directory, LogFile the server's
	// stderr (its log).
	DataDir   string
	SocketDir string
	LogFile   string

	bin  string
	cred *pgCredential // nil: run as the current user
	mu   sync.Mutex
	proc *Child
}

// StartPostgres initialises a fresh cluster with initdb (-A trust -U
// postgres, UTF8, no locale) in a temporary directory and starts postgres
// on a free loopback port with its unix socket in that directory, returning
// once it accepts connections. fsync stays on: a Kill loses nothing a
// COMMIT returned for. When the tests run as root, initdb and the server run
// as the system user postgres (they refuse root), and the directory is
// theirs. The server is killed and its files removed at test cleanup. It
// fails the test when initdb or postgres is missing (naming the package to
// install), when initdb fails, or when the server does not accept
// connections within 60s (with the end of its log).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, initdb := postgresBinaries()
	if bin == "" || initdb == "" {
		t.Fatalf("postgres and initdb not found (looked in PATH, %s and %s): install the postgresql package (scripts/test.sh does this)",
			postgresBinGlob, strings.Join(binDirs, ", "))
	}
	dir := shortTempDir(t, "pg")
	p := &Postgres{
		Host:      "127.0.0.1",
		User:      "postgres",
		DataDir:   filepath.Join(dir, "data"),
		SocketDir: dir,
		LogFile:   filepath.Join(dir, "postgres.log"),
		bin:       bin,
	}
	if os.Geteuid() == 0 {
		p.cred = postgresCredential(t, dir)
	}

	began := time.Now()
	cmd := exec.Command(initdb, "-D", p.DataDir, "-A", "trust", "-U", p.User, "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.Dir = dir
	cmd.SysProcAttr = pgProcAttr(p.cred)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: %s -D %s failed: %v\n%s", initdb, p.DataDir, err, tailString(string(out), 40))
	}
	initialised := time.Since(began)

	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.killLocked()
	})
	for attempt := 1; ; attempt++ {
		p.Port = FreePort(t)
		err := p.start()
		if err == nil {
			break
		}
		if attempt < startAttempts && strings.Contains(err.Error(), "already in use") {
			t.Logf("testenv: postgres port %d was taken, retrying with another port", p.Port)
			continue
		}
		t.Fatalf("testenv: start postgres: %v", err)
	}
	t.Logf("testenv: postgres on %s started in %s (initdb %s)", p.Addr(),
		time.Since(began).Round(time.Millisecond), initialised.Round(time.Millisecond))
	return p
}

// postgresBinaries returns the paths of postgres and initdb from one
// installation: PATH and binDirs first, else the newest version under
// /usr/lib/postgresql. "" when not found.
func postgresBinaries() (postgres, initdb string) {
	if pg, in := findBinary("postgres"), findBinary("initdb"); pg != "" && in != "" {
		return pg, in
	}
	dirs, _ := filepath.Glob(postgresBinGlob)
	// Newest major version first: /usr/lib/postgresql/16/bin before 9.6.
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		pg, in := filepath.Join(d, "postgres"), filepath.Join(d, "initdb")
		if isExecutable(pg) && isExecutable(in) {
			return pg, in
		}
	}
	return "", ""
}

// pgVersion is the major version in /usr/lib/postgresql/VERSION/bin (0
// when it is not a number).
func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// args is the postgres command line.
func (p *Postgres) args() []string {
	return []string{
		"-D", p.DataDir,
		"-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=" + p.Host,
		"-c", "unix_socket_directories=" + p.SocketDir,
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=100",
		"-c", "log_min_messages=warning",
		"-c", "TimeZone=UTC",
	}
}

// start launches postgres on p.Port and waits until it accepts
// connections. On failure the process is gone and the error carries the
// end of the log.
func (p *Postgres) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil && !p.proc.Exited() {
		return fmt.Errorf("postgres on %s is already running", p.Addr())
	}
	logOffset := fileSize(p.LogFile)
	out, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log file %s: %w", p.LogFile, err)
	}
	cmd := exec.Command(p.bin, p.args()...)
	cmd.Dir = p.SocketDir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = pgProcAttr(p.cred)
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	c := &Child{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		_ = out.Close()
		close(c.done)
	}()
	p.proc = c

	fail := func(format string, args ...any) error {
		p.killLocked()
		msg := fmt.Sprintf(format, args...)
		if strings.Contains(readFrom(p.LogFile, logOffset), "Address already in use") {
			msg += " (port already in use)"
		}
		return fmt.Errorf("%s\ncommand: %s %s\n%s", msg, p.bin, strings.Join(p.args(), " "), logTail(p.LogFile, 30))
	}
	deadline := time.Now().Add(postgresStartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if c.Exited() {
			return fail("postgres %s before accepting connections", c.ExitStatus())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lastErr = ping(ctx, p.DSN("postgres"))
		cancel()
		if lastErr == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fail("postgres did not accept connections on %s within %s (last error: %v)", p.Addr(), postgresStartTimeout, lastErr)
}

// ping connects to dsn and runs SELECT 1.
func ping(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// killLocked SIGKILLs the server's process group (postmaster and
// backends) and waits until every process of it is gone, so that a Start
// finds no backend still attached to the old shared memory. p.mu must be
// held.
func (p *Postgres) killLocked() {
	if p.proc == nil {
		return
	}
	killGroup(p.proc.Pid(), postgresStopTimeout)
	p.proc.Kill()
}

// DSN returns a pgx connection URL for the superuser on database db over
// TCP, without TLS: "postgres://postgres@127.0.0.1:PORT/db?sslmode=disable".
func (p *Postgres) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(p.User),
		Host:     p.Addr(),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Addr returns "127.0.0.1:PORT".
func (p *Postgres) Addr() string {
	return addr(p.Host, p.Port)
}

// Conn returns a connection to database db as the superuser, closed at test
// cleanup. It fails the test when the server does not answer.
func (p *Postgres) Conn(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN(db))
	if err != nil {
		t.Fatalf("testenv: connect to postgres %s database %q: %v", p.Addr(), db, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// CreateDB creates the database name (owned by the superuser). It fails the
// test when it exists or the server refuses.
func (p *Postgres) CreateDB(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatalf("testenv: connect to postgres %s: %v", p.Addr(), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: postgres %s: create database %q: %v", p.Addr(), name, err)
	}
}

// Stop shuts the server down (SIGINT: fast shutdown, a checkpoint) and
// waits for it to exit, keeping the data directory. Stopping a stopped
// server does nothing. It fails the test when the server does not exit
// within 60s (it is then killed).
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil || p.proc.Exited() {
		return
	}
	began := time.Now()
	if err := p.proc.Stop(syscall.SIGINT, postgresStopTimeout); err != nil {
		p.killLocked()
		t.Fatalf("testenv: stop postgres %s: %v\n%s", p.Addr(), err, logTail(p.LogFile, 30))
	}
	p.killLocked() // backends of a postmaster that exited
	t.Logf("testenv: postgres on %s stopped in %s", p.Addr(), time.Since(began).Round(time.Millisecond))
}

// Kill stops the server with SIGKILL, postmaster and backends at once (a
// crash), keeping the data directory; Start then runs crash recovery, which
// brings back every committed transaction (fsync is on).
func (p *Postgres) Kill(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killLocked()
}

// Start starts a stopped server again on the same port and data directory
// and waits until it accepts connections. It fails the test when the server
// is running or does not come up within 60s.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	began := time.Now()
	if err := p.start(); err != nil {
		t.Fatalf("testenv: restart postgres: %v", err)
	}
	t.Logf("testenv: postgres on %s restarted in %s", p.Addr(), time.Since(began).Round(time.Millisecond))
}
