package wiring_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/wiring"
	"github.com/dbsync/dbsync/test/testenv"
)

func configAuth(c testenv.Credentials) config.NATSAuth {
	return config.NATSAuth{User: c.User, Password: c.Password, Token: c.Token, NKeySeedFile: c.NKeySeedFile, CredsFile: c.CredsFile}
}

// assertAuthFailure checks a refused connection: permanent, a fix naming
// key's settings, no secret in the error or the fix.
func assertAuthFailure(t *testing.T, what string, err error, key string, secrets []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: connected with wrong credentials", what)
	}
	fix := failure.Fix(err)
	t.Logf("%s: %v; fix: %s", what, err, fix)
	if !failure.IsPermanent(err) || !errors.Is(err, mq.ErrUnauthorized) {
		t.Errorf("%s: %v is not a permanent mq.ErrUnauthorized", what, err)
	}
	if !strings.Contains(fix, key+".") {
		t.Errorf("%s: fix %q does not name %s", what, fix, key)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) || strings.Contains(fix, s) {
			t.Errorf("%s: a secret shows in %v (fix %q)", what, err, fix)
		}
	}
}

// TestQueueAuthAndTLSFromConfig: JetStream.Auth/TLS and Stan.Auth/TLS reach
// the connections of OpenQueue and ProbeBroker (TLS verify_identity against
// the test CA); wrong credentials are a permanent error whose fix names
// the setting, without the secret.
func TestQueueAuthAndTLSFromConfig(t *testing.T) {
	pki := testenv.NewPKI(t)
	tlsCfg := config.TLS{CA: pki.CA, Mode: config.TLSVerifyIdentity}
	for _, tc := range testenv.NATSAuthCases(t, pki, "dbsync.>") {
		t.Run(strings.ReplaceAll(tc.Kind, "/", "-")+"/jetstream", func(t *testing.T) {
			srv := testenv.StartNATSWith(t, testenv.NATSOptions{Security: tc.Security})
			cfg := newConfig(t)
			cfg.JetStream.URL, cfg.JetStream.TLS, cfg.JetStream.Auth = srv.URL(), tlsCfg, configAuth(tc.Producer)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			q, err := wiring.OpenQueue(ctx, cfg, nil)
			if err != nil {
				t.Fatalf("OpenQueue: %v", err)
			}
			if err := q.Publish(ctx, []mq.Message{{Subject: "dbsync.shop.t", ID: "f.000001:4:0", Data: []byte("{}")}}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			q.Close()
			if _, err := wiring.ProbeBroker(ctx, cfg); err != nil {
				t.Errorf("ProbeBroker: %v", err)
			}
			cfg.JetStream.Auth = configAuth(tc.Wrong)
			_, err = wiring.OpenQueue(ctx, cfg, nil)
			assertAuthFailure(t, "OpenQueue", err, "JetStream.Auth", tc.Secrets)
			_, err = wiring.ProbeBroker(ctx, cfg)
			assertAuthFailure(t, "ProbeBroker", err, "JetStream.Auth", tc.Secrets)
			cfg.JetStream.Auth = config.NATSAuth{}
			_, err = wiring.OpenQueue(ctx, cfg, nil)
			assertAuthFailure(t, "OpenQueue without credentials", err, "JetStream.Auth", tc.Secrets)
			if !strings.Contains(failure.Fix(err), "requires authentication") {
				t.Errorf("no credentials: the fix does not say the server requires them: %q", failure.Fix(err))
			}
		})
		t.Run(strings.ReplaceAll(tc.Kind, "/", "-")+"/stan", func(t *testing.T) {
			srv := testenv.StartStanWith(t, tc.Security)
			cfg := newConfig(t)
			cfg.MQName, cfg.ProName = "stan", ""
			cfg.Stan.Host, cfg.Stan.ClusterID, cfg.Stan.ClientID = srv.URL(), srv.ClusterID, "wiring-auth"
			cfg.Stan.TLS, cfg.Stan.Auth = tlsCfg, configAuth(tc.Producer)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			q, err := wiring.OpenQueue(ctx, cfg, nil)
			if err != nil {
				t.Fatalf("OpenQueue: %v", err)
			}
			if err := q.Publish(ctx, []mq.Message{{Subject: "shop.t", ID: "f.000001:4:0", Data: []byte("{}")}}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			q.Close()
			if _, err := wiring.ProbeBroker(ctx, cfg); err != nil {
				t.Errorf("ProbeBroker: %v", err)
			}
			cfg.Stan.Auth = configAuth(tc.Wrong)
			_, err = wiring.OpenQueue(ctx, cfg, nil)
			assertAuthFailure(t, "OpenQueue", err, "Stan.Auth", tc.Secrets)
			_, err = wiring.ProbeBroker(ctx, cfg)
			assertAuthFailure(t, "ProbeBroker", err, "Stan.Auth", tc.Secrets)
		})
	}
}

// TestEmbeddedServerRequiresAuth: with JetStream.Auth the embedded server
// refuses a client without those credentials, and the producer (and a
// client with them) get in.
func TestEmbeddedServerRequiresAuth(t *testing.T) {
	password, token := testenv.RandomSecret(t), testenv.RandomSecret(t)
	seedFile, _, seed := testenv.NKeyUser(t)
	for _, a := range []config.NATSAuth{
		{User: "dbsync", Password: password},
		{Token: token},
		{NKeySeedFile: seedFile},
	} {
		t.Run(strings.ReplaceAll(a.Kind(), "/", "-"), func(t *testing.T) {
			cfg := newConfig(t)
			cfg.JetStream.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
			cfg.JetStream.Auth = a
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			q, err := wiring.OpenQueue(ctx, cfg, nil)
			if err != nil {
				t.Fatalf("OpenQueue: %v", err)
			}
			defer q.Close()
			if err := q.Publish(ctx, []mq.Message{{Subject: "dbsync.shop.t", ID: "f.000001:4:0", Data: []byte("{}")}}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			url := "nats://" + cfg.JetStream.Listen
			nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
			if err == nil {
				nc.Close()
				t.Fatal("the embedded server let in a client without credentials")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("a client without credentials: %v, want an authorization violation", err)
			}
			for _, s := range []string{password, token, seed} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("a secret shows in %v", err)
				}
			}
			opts, err := mq.SecurityOptions(mq.NATSAuth{User: a.User, Password: a.Password, Token: a.Token, NKeySeedFile: a.NKeySeedFile}, nil)
			if err != nil {
				t.Fatal(err)
			}
			nc, err = nats.Connect(url, opts...)
			if err != nil {
				t.Fatalf("a client with the credentials: %v", err)
			}
			nc.Close()
		})
	}
}
