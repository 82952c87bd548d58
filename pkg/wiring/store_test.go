package wiring_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/wiring"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestRedisStoreTLSAndACL: the config's Redis.Username, Redis.Password and
// Redis.TLS reach the store: it works over TLS with verify_identity
// against the test CA (the server requiring a client certificate) as an
// ACL user allowed only the checkpoint's keys; a wrong password and a
// certificate for another name are errors naming the settings, without
// the password.
func TestRedisStoreTLSAndACL(t *testing.T) {
	const pw = "redis-acl-pw-4d1"
	pki := testenv.NewPKI(t)
	r := testenv.StartRedisWith(t, testenv.RedisOptions{
		PKI: pki, VerifyClients: true,
		Users: []string{"dbsync on >" + pw + " " + storage.RedisACL("dbsync:pos")},
	})
	cfg := newConfig(t)
	cfg.Storage.DaoName, cfg.Storage.PosKey = "redis", "dbsync:pos"
	cfg.Redis.Host, cfg.Redis.Port = "localhost", config.Port(strconv.Itoa(r.Port))
	cfg.Redis.Username, cfg.Redis.Password = "dbsync", pw
	cfg.Redis.TLS = config.TLS{Mode: config.TLSVerifyIdentity, CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	ctx := t.Context()

	store, err := wiring.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("OpenStore over TLS as an ACL user: %v", err)
	}
	defer store.Close()
	lease, err := wiring.HoldStore(ctx, store, "test")
	if err != nil {
		t.Fatal(err)
	}
	want := position.Position{File: "mysql-bin.000002", Pos: 120}
	if err := store.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := store.Get(ctx); err != nil || got != want {
		t.Fatalf("Get = %v, %v", got, err)
	}
	first := lease.Owner()
	if !strings.HasPrefix(first, "test@") || !strings.Contains(first, " #") {
		t.Errorf("owner %q does not name the role and carry a random id", first)
	}
	lease.Release()
	again, err := wiring.HoldStore(ctx, store, "test")
	if err != nil {
		t.Fatal(err)
	}
	if again.Owner() == first {
		t.Errorf("two holds in one process got the same owner id %q", first)
	}
	again.Release()

	for name, mod := range map[string]func(c *config.Config){
		"wrong password": func(c *config.Config) { c.Redis.Password = "not-the-redis-pw-9" },
		"wrong name":     func(c *config.Config) { c.Redis.TLS.ServerName = "redis.example.com" },
	} {
		t.Run(name, func(t *testing.T) {
			c := *cfg
			mod(&c)
			_, err := wiring.OpenStore(ctx, &c, nil)
			t.Logf("error: %v (fix: %s)", err, failure.Fix(err))
			if err == nil {
				t.Fatal("OpenStore succeeded")
			}
			setting := map[string]string{"wrong password": "Redis.Password", "wrong name": "Redis.TLS"}[name]
			if !strings.Contains(err.Error(), setting) || !strings.Contains(failure.Fix(err), setting) {
				t.Errorf("error or fix does not name %s", setting)
			}
			if !failure.IsPermanent(err) || errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("want a permanent configuration error: %v", err)
			}
			for _, secret := range []string{pw, "not-the-redis-pw-9"} {
				if strings.Contains(err.Error(), secret) || strings.Contains(failure.Fix(err), secret) {
					t.Errorf("the error reveals a password")
				}
			}
		})
	}
}
