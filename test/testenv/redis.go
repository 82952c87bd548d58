package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	redisStartTimeout = 30 * time.Second
	redisStopTimeout  = 30 * time.Second
)

// Redis is a redis-server started by StartRedis, StartRedisWithPassword or
// StartRedisWith, listening on Host:Port (127.0.0.1). Password is the
// default user's, "" when none is required.
type Redis struct {
	Host     string
	Port     int
	Password string
	// Dir is the server's working directory (dump.rdb, redis.log).
	Dir string
	// LogFile is the server's log.
	LogFile string
	// TLS is the client side of the server's TLS (trusting the test CA,
	// presenting the client certificate, ServerName 127.0.0.1); nil when
	// the server speaks plaintext.
	TLS *tls.Config

	opts RedisOptions
	bin  string
	mu   sync.Mutex
	proc *Child
}

// RedisOptions configure StartRedisWith.
type RedisOptions struct {
	// Password is the default user's password ("" for none).
	Password string
	// PKI, when set, makes the server speak TLS only, with PKI's server
	// certificate (Port is its tls-port; the plaintext port is off).
	PKI *PKI
	// VerifyClients makes a TLS server require a client certificate of
	// PKI's CA.
	VerifyClients bool
	// Users are ACL users besides default, each the rules of one line of
	// an ACL file after "user": "dbsync on >pw ~key ~key:lease +get".
	Users []string
}

// StartRedis starts redis-server without a password on a free loopback
// port, with periodic persistence off (--save "" --appendonly no; Stop
// saves the data set explicitly), and returns once
// it answers PING. The server is killed at test cleanup. It fails the test
// when redis-server is missing or does not come up within 30s.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWithPassword(t, "")
}

// StartRedisWithPassword is StartRedis with requirepass set to password
// ("" for none).
func StartRedisWithPassword(t testing.TB, password string) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{Password: password})
}

// StartRedisWith is StartRedis with TLS and ACL users as opts say. With
// Users, the users (and default, with opts.Password or none) are written to
// an ACL file in Dir the server loads.
func StartRedisWith(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	dir := t.TempDir()
	r := &Redis{
		Host:     "127.0.0.1",
		Password: opts.Password,
		Dir:      dir,
		LogFile:  filepath.Join(dir, "redis.log"),
		opts:     opts,
		bin:      mustFindBinary(t, "redis-server", "redis-server"),
	}
	if opts.PKI != nil {
		r.TLS = opts.PKI.ClientTLS(t)
		r.TLS.ServerName = r.Host
	}
	if len(opts.Users) > 0 {
		def := "user default on nopass ~* &* +@all"
		if opts.Password != "" {
			def = "user default on >" + opts.Password + " ~* &* +@all"
		}
		lines := []string{def}
		for _, u := range opts.Users {
			lines = append(lines, "user "+u)
		}
		if err := os.WriteFile(filepath.Join(dir, "users.acl"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("testenv: write the redis ACL file: %v", err)
		}
	}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.proc != nil {
			r.proc.Kill()
		}
	})
	began := time.Now()
	for attempt := 1; ; attempt++ {
		r.Port = FreePort(t)
		err := r.start()
		if err == nil {
			break
		}
		if attempt < startAttempts && strings.Contains(err.Error(), "already in use") {
			t.Logf("testenv: redis port %d was taken, retrying with another port", r.Port)
			continue
		}
		t.Fatalf("testenv: start redis: %v", err)
	}
	t.Logf("testenv: redis on %s started in %s", r.Addr(), time.Since(began).Round(time.Millisecond))
	return r
}

// Addr returns "127.0.0.1:PORT".
func (r *Redis) Addr() string {
	return addr(r.Host, r.Port)
}

// Client returns a go-redis client for the server (as default, with its
// password; over TLS when the server speaks it), closed at test cleanup.
func (r *Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, TLSConfig: r.clientTLS()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// clientTLS is a copy of r.TLS (nil for none).
func (r *Redis) clientTLS() *tls.Config {
	if r.TLS == nil {
		return nil
	}
	return r.TLS.Clone()
}

// args is the redis-server command line.
func (r *Redis) args() []string {
	a := []string{"--port", strconv.Itoa(r.Port)}
	if p := r.opts.PKI; p != nil {
		auth := "no"
		if r.opts.VerifyClients {
			auth = "yes"
		}
		a = []string{
			"--port", "0",
			"--tls-port", strconv.Itoa(r.Port),
			"--tls-cert-file", p.ServerCert,
			"--tls-key-file", p.ServerKey,
			"--tls-ca-cert-file", p.CA,
			"--tls-auth-clients", auth,
		}
	}
	a = append(a,
		"--bind", r.Host,
		"--save", "",
		"--appendonly", "no",
		"--dir", r.Dir,
		"--logfile", r.LogFile,
		"--daemonize", "no",
	)
	if len(r.opts.Users) > 0 {
		a = append(a, "--aclfile", filepath.Join(r.Dir, "users.acl"))
	} else if r.Password != "" {
		a = append(a, "--requirepass", r.Password)
	}
	return a
}

// start launches redis-server on r.Port and waits for PING to answer.
func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.Exited() {
		return fmt.Errorf("redis on %s is already running", r.Addr())
	}
	logOffset := fileSize(r.LogFile)
	outFile := filepath.Join(r.Dir, "redis-server.out")
	p, err := StartChildLogging(outFile, r.bin, r.args()...)
	if err != nil {
		return err
	}
	r.proc = p
	fail := func(format string, args ...any) error {
		p.Kill()
		msg := fmt.Sprintf(format, args...)
		if strings.Contains(readFrom(r.LogFile, logOffset), "Address already in use") {
			msg += " (port already in use)"
		}
		return fmt.Errorf("%s\ncommand: %s %s\n%s\n%s", msg, r.bin, strings.Join(r.args(), " "),
			logTail(r.LogFile, 30), logTail(outFile, 10))
	}

	c := redis.NewClient(&redis.Options{
		Addr: r.Addr(), Password: r.Password, TLSConfig: r.clientTLS(),
		DialTimeout: time.Second, MaxRetries: -1,
	})
	defer c.Close()
	deadline := time.Now().Add(redisStartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fail("redis-server %s before answering PING", p.ExitStatus())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		lastErr = c.Ping(ctx).Err()
		cancel()
		if lastErr == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fail("redis-server did not answer PING on %s within %s (last error: %v)", r.Addr(), redisStartTimeout, lastErr)
}

// Stop shuts the server down with SHUTDOWN SAVE, which writes the data set
// to Dir/dump.rdb although periodic saving is off, and waits for it to exit:
// Start brings the data back, like a restart of a persistent production
// Redis (use Kill to lose it). Stopping a stopped server does nothing. It
// fails the test when the server does not exit within 30s (it is then
// killed).
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil || r.proc.Exited() {
		return
	}
	began := time.Now()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, TLSConfig: r.clientTLS(), MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), redisStopTimeout)
	// SHUTDOWN closes the connection instead of replying: an I/O error is
	// the expected outcome, the exit below is what counts.
	_ = c.ShutdownSave(ctx).Err()
	cancel()
	_ = c.Close()
	select {
	case <-r.proc.Done():
	case <-time.After(redisStopTimeout):
		r.proc.Kill()
		t.Fatalf("testenv: stop redis %s: SHUTDOWN SAVE did not stop it within %s; killed it\n%s",
			r.Addr(), redisStopTimeout, logTail(r.LogFile, 30))
	}
	t.Logf("testenv: redis on %s stopped in %s", r.Addr(), time.Since(began).Round(time.Millisecond))
}

// Kill stops the server with SIGKILL: changes since the last Stop are lost
// (Start brings back an empty server when there was none).
func (r *Redis) Kill(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		r.proc.Kill()
	}
}

// Start starts a stopped server again on the same port and waits for PING
// to answer. It fails the test when the server is running or does not come
// up within 30s.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	began := time.Now()
	if err := r.start(); err != nil {
		t.Fatalf("testenv: restart redis: %v", err)
	}
	t.Logf("testenv: redis on %s restarted in %s", r.Addr(), time.Since(began).Round(time.Millisecond))
}
