package producer_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestRedisACLUserOverTLS: the producer keeps its checkpoint in a Redis
// that speaks only TLS (its certificate checked against the test CA, with
// the identity check) as an ACL user allowed only the checkpoint's keys,
// the password read from Redis.PasswordFile. With a wrong password it does
// not start, and neither its log nor the doctor shows a password.
func TestRedisACLUserOverTLS(t *testing.T) {
	t.Parallel()
	const pw, wrong = "Pw-Redis-Acl-8k", "Pw-Redis-Wrong-2j"
	pki := testenv.NewPKI(t)
	r := testenv.StartRedisWith(t, testenv.RedisOptions{
		PKI:   pki,
		Users: []string{"dbsync on >" + pw + " " + storage.RedisACL("dbsync:pos")},
	})
	pwFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.Set("Storage.DaoName", "redis")
	e.Set("Storage.PosKey", "dbsync:pos")
	e.Set("Redis.Host", "localhost")
	e.Set("Redis.Port", strconv.Itoa(r.Port))
	e.Set("Redis.Username", "dbsync")
	e.Set("Redis.PasswordFile", pwFile)
	e.Set("Redis.TLS", map[string]any{"Mode": "verify_identity", "CA": pki.CA})
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")

	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (1)")
	e.WaitFor("shop.t", 1, 30*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if !strings.Contains(p.Output(), `user=dbsync`) || !strings.Contains(p.Output(), "tls=true") {
		t.Errorf("the log does not say the store was opened as dbsync over TLS:\n%s", p.Output())
	}
	if v, err := r.Client(t).Get(t.Context(), "dbsync:pos").Result(); err != nil || !strings.Contains(v, "mysql-bin.") {
		t.Fatalf("checkpoint in redis: %q, %v", v, err)
	}

	if err := os.WriteFile(pwFile, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p = e.Start()
	if code := p.Wait(30 * time.Second); code != 1 {
		t.Fatalf("start with a wrong Redis password: exit %d, want 1:\n%s", code, p.Output())
	}
	_, doctorOut, doctorErr := e.Command("doctor")
	for name, out := range map[string]string{"producer log": p.Output(), "doctor": doctorOut + doctorErr} {
		if !strings.Contains(out, "rejected the credentials") || !strings.Contains(out, "Redis.PasswordFile") {
			t.Errorf("%s does not say the credentials were rejected and which settings to fix:\n%s", name, out)
		}
		for _, secret := range []string{pw, wrong} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows %q:\n%s", name, secret, out)
			}
		}
	}
}
