package storage

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

func newRedisKit(t *testing.T) kit {
	r := testenv.StartRedis(t)
	key := "dbsync:test:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	return kit{
		name:  "redis",
		names: []string{r.Addr(), strconv.Quote(key)},
		open: func(t *testing.T) PositionStorager {
			return openRedisT(t, RedisOptions{Addr: r.Addr(), Key: key})
		},
	}
}

func openRedisT(t *testing.T, opts RedisOptions) *RedisStore {
	t.Helper()
	s, err := OpenRedis(testCtx(t), opts, testLogger(t))
	if err != nil {
		t.Fatalf("OpenRedis(%s): %v", opts.Addr, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRedisRequiresAddr(t *testing.T) {
	_, err := OpenRedis(testCtx(t), RedisOptions{}, nil)
	assertContains(t, err, "no address")
}

func TestRedisDefaultKey(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := testCtx(t)
	s := openRedisT(t, RedisOptions{Addr: r.Addr()})
	if s.Addr() != r.Addr() {
		t.Errorf("Addr() = %q", s.Addr())
	}
	if err := s.Save(ctx, position.Position{File: "mysql-bin.000002", Pos: 1234, GTID: "0-1-42"}); err != nil {
		t.Fatal(err)
	}
	raw, err := r.Client(t).Get(ctx, "key").Bytes()
	if err != nil {
		t.Fatalf("raw GET key: %v", err)
	}
	if _, err := decodeCheckpoint(raw); err != nil {
		t.Fatalf("stored value %s: %v", raw, err)
	}
	ttl, err := r.Client(t).TTL(ctx, "key").Result()
	if err != nil || ttl != -1 {
		t.Errorf("checkpoint key must not expire: TTL = %v, %v", ttl, err)
	}
}

func TestRedisPassword(t *testing.T) {
	r := testenv.StartRedisWithPassword(t, "s3cret-pw")
	ctx := testCtx(t)
	for _, c := range []struct{ name, pw string }{{"wrong", "not-it"}, {"missing", ""}} {
		t.Run(c.name, func(t *testing.T) {
			s, err := OpenRedis(ctx, RedisOptions{Addr: r.Addr(), Password: c.pw}, testLogger(t))
			if err == nil {
				_ = s.Close()
				t.Fatalf("OpenRedis with %s password succeeded", c.name)
			}
			t.Logf("error: %v", err)
			assertContains(t, err, r.Addr(), "rejected the credentials", "password")
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("a wrong password is a configuration error, not ErrUnavailable: %v", err)
			}
			if strings.Contains(err.Error(), "s3cret-pw") || (c.pw != "" && strings.Contains(err.Error(), c.pw)) {
				t.Errorf("error reveals a password: %v", err)
			}
		})
	}
	s := openRedisT(t, RedisOptions{Addr: r.Addr(), Password: "s3cret-pw", Key: "k"})
	want := position.Position{File: "mysql-bin.000003", Pos: 42}
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx); err != nil || got != want {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

func TestRedisBadDB(t *testing.T) {
	r := testenv.StartRedis(t)
	_, err := OpenRedis(testCtx(t), RedisOptions{Addr: r.Addr(), DB: 999}, testLogger(t))
	assertContains(t, err, r.Addr(), "no database 999")
}

func TestRedisNothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	start := time.Now()
	s, err := OpenRedis(testCtx(t), RedisOptions{Addr: addr}, testLogger(t))
	if err == nil {
		_ = s.Close()
		t.Fatalf("OpenRedis(%s) with nothing listening succeeded", addr)
	}
	t.Logf("error after %v: %v", time.Since(start), err)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("OpenRedis took %v to fail, want < 5s", took)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("want ErrUnavailable, got %v", err)
	}
	assertContains(t, err, addr, "unreachable")
}

func TestRedisStoppedServer(t *testing.T) {
	r := testenv.StartRedis(t)
	s := openRedisT(t, RedisOptions{Addr: r.Addr(), Key: "pos"})
	want := position.Position{File: "mysql-bin.000009", Pos: 900, GTID: "0-1-9"}
	if err := s.Save(testCtx(t), want); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)

	fast := func(what string, fn func() error) {
		t.Helper()
		start := time.Now()
		err := fn()
		took := time.Since(start)
		t.Logf("%s: error after %v: %v", what, took, err)
		if err == nil {
			t.Fatalf("%s succeeded against a stopped redis", what)
		}
		if took > 5*time.Second {
			t.Errorf("%s took %v to fail, want < 5s", what, took)
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: want ErrUnavailable, got %v", what, err)
		}
		if errors.Is(err, ErrNoCheckpoint) {
			t.Errorf("%s: an unreachable store must not look like a first start: %v", what, err)
		}
		assertContains(t, err, r.Addr())
	}
	fast("Get", func() error { _, err := s.Get(testCtx(t)); return err })
	fast("Save", func() error {
		return s.Save(testCtx(t), position.Position{File: "mysql-bin.000009", Pos: 1000})
	})
	fast("OpenRedis", func() error {
		s2, err := OpenRedis(testCtx(t), RedisOptions{Addr: r.Addr(), Key: "pos"}, testLogger(t))
		if err == nil {
			_ = s2.Close()
		}
		return err
	})

	// After a restart the same store recovers (within a few seconds) and
	// still has the checkpoint saved before the outage.
	r.Start(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Get(testCtx(t))
		if err == nil {
			if got != want {
				t.Fatalf("after restart Get = %v, want %v", got, want)
			}
			break
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after restart Get: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRedisCorruptValue(t *testing.T) {
	r := testenv.StartRedis(t)
	raw := r.Client(t)
	for _, c := range []struct {
		name, val string
		shows     []string
	}{
		{"not json", "garbage\x00value", []string{`"garbage\x00value"`, "not a JSON checkpoint"}},
		{"empty", "", []string{`""`}},
		{"old plain format", "mysql-bin.000001:4", []string{`"mysql-bin.000001:4"`}},
		{"invalid position", `{"file":"","pos":4,"gtid":"","saved_at":"2024-05-01T09:00:00Z","v":1}`, []string{"no binlog file name"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			key := "bad:" + c.name
			if err := raw.Set(ctx, key, c.val, 0).Err(); err != nil {
				t.Fatal(err)
			}
			s := openRedisT(t, RedisOptions{Addr: r.Addr(), Key: key})
			_, err := s.Get(ctx)
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("want ErrCorrupt, got %v", err)
			}
			if errors.Is(err, ErrNoCheckpoint) || errors.Is(err, ErrUnavailable) {
				t.Errorf("corrupt value error must be only ErrCorrupt: %v", err)
			}
			assertContains(t, err, append([]string{r.Addr(), strconv.Quote(key), "dbsync will not guess"}, c.shows...)...)
			if got, err := raw.Get(ctx, key).Result(); err != nil || got != c.val {
				t.Errorf("the value changed during the failed Get: %q, %v", got, err)
			}
		})
	}
	t.Run("wrong type", func(t *testing.T) {
		ctx := testCtx(t)
		if err := raw.RPush(ctx, "listkey", "a").Err(); err != nil {
			t.Fatal(err)
		}
		s := openRedisT(t, RedisOptions{Addr: r.Addr(), Key: "listkey"})
		_, err := s.Get(ctx)
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("want ErrCorrupt, got %v", err)
		}
		assertContains(t, err, r.Addr(), `"listkey"`, "not a string")
	})
}

// TestRedisHungServer covers a peer that accepts connections but never
// answers (a hung or overloaded server, a half-dead network path): the
// store must give up within its timeouts instead of blocking the producer.
func TestRedisHungServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // hold it open, never reply
		}
	}()
	addr := l.Addr().String()
	start := time.Now()
	s, err := OpenRedis(testCtx(t), RedisOptions{Addr: addr, ReadTimeout: 500 * time.Millisecond}, testLogger(t))
	took := time.Since(start)
	t.Logf("error after %v: %v", took, err)
	if err == nil {
		_ = s.Close()
		t.Fatalf("OpenRedis against a silent peer succeeded")
	}
	if took > 3*time.Second {
		t.Errorf("OpenRedis took %v with a 500ms read timeout", took)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("want ErrUnavailable, got %v", err)
	}
	assertContains(t, err, addr)

	start = time.Now()
	s, err = OpenRedis(testCtx(t), RedisOptions{Addr: addr}, testLogger(t))
	took = time.Since(start)
	t.Logf("default timeouts: error after %v: %v", took, err)
	if err == nil {
		_ = s.Close()
		t.Fatalf("OpenRedis against a silent peer succeeded")
	}
	if took > 5*time.Second {
		t.Errorf("OpenRedis with default timeouts took %v, want < 5s", took)
	}
}

// TestRedisTLS: the store works over TLS with the server's certificate
// checked against the test CA (and a client certificate the server
// requires); a server certificate of another CA, and a plaintext client on
// the TLS port, are refused with a permanent error naming Redis.TLS.
func TestRedisTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	r := testenv.StartRedisWith(t, testenv.RedisOptions{PKI: pki, VerifyClients: true})
	ctx := testCtx(t)
	s := openRedisT(t, RedisOptions{Addr: r.Addr(), Key: "tls", TLS: r.TLS.Clone()})
	l := acquireT(t, s, "tls #1", time.Minute)
	want := position.Position{File: "mysql-bin.000004", Pos: 44, GTID: "0-1-4"}
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx); err != nil || got != want {
		t.Fatalf("Get over TLS = %v, %v", got, err)
	}
	l.Release()

	untrusted := testenv.NewPKI(t).ClientTLS(t)
	untrusted.ServerName = "127.0.0.1"
	_, err := OpenRedis(ctx, RedisOptions{Addr: r.Addr(), TLS: untrusted}, testLogger(t))
	t.Logf("another CA: %v", err)
	assertContains(t, err, r.Addr(), "Redis.TLS", "not trusted")
	if !failure.IsPermanent(err) || failure.Fix(err) == "" || errors.Is(err, ErrUnavailable) {
		t.Errorf("an untrusted certificate must be permanent, with a fix, not unavailable: %v", err)
	}

	wrongName := r.TLS.Clone()
	wrongName.ServerName = "redis.example.com"
	_, err = OpenRedis(ctx, RedisOptions{Addr: r.Addr(), TLS: wrongName}, testLogger(t))
	t.Logf("wrong name: %v", err)
	assertContains(t, err, "Redis.TLS")

	start := time.Now()
	_, err = OpenRedis(ctx, RedisOptions{Addr: r.Addr()}, testLogger(t))
	t.Logf("plaintext on the TLS port after %v: %v", time.Since(start), err)
	if err == nil {
		t.Fatal("a plaintext client on the TLS port succeeded")
	}
	assertContains(t, err, r.Addr(), "Redis.TLS")
}

// TestRedisACLUser: an ACL user allowed only the checkpoint's keys and the
// store's commands (RedisACL) can do everything the store does; a wrong
// password, or another key, is a permanent error naming the settings and
// never the password.
func TestRedisACLUser(t *testing.T) {
	const pw, wrong = "acl-Pw-91f3", "not-the-Pw-77"
	r := testenv.StartRedisWith(t, testenv.RedisOptions{
		Password: "admin-Pw-5c2e",
		Users:    []string{"dbsync on >" + pw + " " + RedisACL("dbsync:ckpt")},
	})
	ctx := testCtx(t)
	s := openRedisT(t, RedisOptions{Addr: r.Addr(), Username: "dbsync", Password: pw, Key: "dbsync:ckpt"})
	l := acquireT(t, s, "acl #1", 900*time.Millisecond)
	want := position.Position{File: "mysql-bin.000005", Pos: 55}
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx); err != nil || got != want {
		t.Fatalf("Get = %v, %v", got, err)
	}
	time.Sleep(2 * time.Second) // a few refreshes, or the lease would have lapsed
	if err := l.Err(); err != nil {
		t.Fatalf("lease refreshed by the ACL user: %v", err)
	}
	l.Release()
	if err := s.Delete(ctx); err != nil {
		t.Fatal(err)
	}

	noSecret := func(err error) {
		t.Helper()
		for _, secret := range []string{pw, wrong, "admin-Pw-5c2e"} {
			if strings.Contains(err.Error(), secret) || strings.Contains(failure.Fix(err), secret) {
				t.Errorf("error reveals a password: %v (fix: %s)", err, failure.Fix(err))
			}
		}
	}
	for _, c := range []struct{ name, user, pw string }{{"wrong password", "dbsync", wrong}, {"unknown user", "nobody", pw}, {"no password", "dbsync", ""}} {
		t.Run(c.name, func(t *testing.T) {
			_, err := OpenRedis(ctx, RedisOptions{Addr: r.Addr(), Username: c.user, Password: c.pw}, testLogger(t))
			t.Logf("error: %v", err)
			assertContains(t, err, r.Addr(), "rejected the credentials", "Redis.Username", "Redis.Password")
			if !failure.IsPermanent(err) || errors.Is(err, ErrUnavailable) || !strings.Contains(failure.Fix(err), "Redis.PasswordFile") {
				t.Errorf("a refused login must be permanent, with a fix naming the settings: %v (fix: %s)", err, failure.Fix(err))
			}
			noSecret(err)
		})
	}

	// Another key is out of the user's reach.
	other := openRedisT(t, RedisOptions{Addr: r.Addr(), Username: "dbsync", Password: pw, Key: "other"})
	err := other.Save(ctx, want)
	t.Logf("another key: %v (fix: %s)", err, failure.Fix(err))
	assertContains(t, err, "ACL", `"dbsync"`, "Redis.Username")
	if !failure.IsPermanent(err) || !strings.Contains(failure.Fix(err), "ACL SETUSER dbsync") {
		t.Errorf("a missing permission must be permanent with the ACL fix: %v (fix: %s)", err, failure.Fix(err))
	}
	noSecret(err)
}

func TestRedisACLPattern(t *testing.T) {
	if got := RedisACL("a*b"); !strings.Contains(got, `~a\*b `) || !strings.Contains(got, `~a\*b:lease `) {
		t.Errorf("RedisACL(a*b) = %q", got)
	}
}
