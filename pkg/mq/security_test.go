package mq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/test/testenv"
)

func authOf(c testenv.Credentials) NATSAuth {
	return NATSAuth{User: c.User, Password: c.Password, Token: c.Token, NKeySeedFile: c.NKeySeedFile, CredsFile: c.CredsFile}
}

// assertNoSecret fails when text shows one of secrets.
func assertNoSecret(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s shows a secret: %s", what, text)
		}
	}
}

// logText joins every entry of hook (messages and fields).
func logText(hook *logtest.Hook) string {
	var b strings.Builder
	for _, e := range hook.AllEntries() {
		s, _ := e.String()
		b.WriteString(s)
	}
	return b.String()
}

// assertRefused checks that err is a permanent refusal of the credentials
// that shows no secret.
func assertRefused(t *testing.T, err error, secrets []string) {
	t.Helper()
	if err == nil {
		t.Fatal("connected with wrong credentials")
	}
	if !errors.Is(err, ErrUnauthorized) || !failure.IsPermanent(err) {
		t.Errorf("error is not a permanent ErrUnauthorized: %v", err)
	}
	if errors.Is(err, ErrUnreachable) {
		t.Errorf("a refusal of the credentials is reported as unreachable: %v", err)
	}
	if failure.Fix(err) == "" {
		t.Errorf("no fix: %v", err)
	}
	assertNoSecret(t, "error", err.Error()+" "+failure.Fix(err), secrets)
}

func TestJetStreamAuthAndTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	for _, tc := range testenv.NATSAuthCases(t, pki, "app.>") {
		t.Run(strings.ReplaceAll(tc.Kind, "/", "-"), func(t *testing.T) {
			srv := testenv.StartNATSWith(t, testenv.NATSOptions{Security: tc.Security})
			log, hook := logtest.NewNullLogger()
			log.SetLevel(logrus.DebugLevel)
			tlsConfig := pki.ClientTLS(t) // verify_identity: the certificate must name 127.0.0.1
			j := newTestJetStreamLog(t, srv, func(o *JetStreamOptions) {
				o.Auth, o.TLS = authOf(tc.Producer), tlsConfig
			}, log)
			msgs := makeMsgs("sec", 4, []string{"app.shop.orders"}, 10)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := j.Publish(ctx, msgs); err != nil {
				t.Fatalf("Publish over TLS with %s: %v", tc.Kind, err)
			}
			jsCheckSubject(t, srv, "app.shop.orders", msgs)
			if _, err := InspectJetStream(ctx, JetStreamOptions{URL: srv.URL(), Stream: jsTestStream, Subjects: []string{"app.*.*"},
				Auth: authOf(tc.Producer), TLS: tlsConfig}); err != nil {
				t.Errorf("InspectJetStream: %v", err)
			}

			for name, auth := range map[string]NATSAuth{"wrong": authOf(tc.Wrong), "none": {}} {
				_, err := NewJetStream(ctx, JetStreamOptions{URL: srv.URL(), Stream: jsTestStream, Subjects: []string{"app.*.*"},
					Auth: auth, TLS: tlsConfig, ConnectTimeout: 3 * time.Second}, log)
				t.Logf("%s credentials: %v", name, err)
				assertRefused(t, err, tc.Secrets)
				_, err = InspectJetStream(ctx, JetStreamOptions{URL: srv.URL(), Stream: jsTestStream, Subjects: []string{"app.*.*"},
					Auth: auth, TLS: tlsConfig, ConnectTimeout: 3 * time.Second})
				assertRefused(t, err, tc.Secrets)
			}
			assertNoSecret(t, "log", logText(hook), tc.Secrets)
		})
	}
}

func TestJetStreamTLSRefusesAnUntrustedServer(t *testing.T) {
	pki, other := testenv.NewPKI(t), testenv.NewPKI(t)
	srv := testenv.StartNATSWith(t, testenv.NATSOptions{Security: testenv.NATSSecurity{PKI: pki}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := NewJetStream(ctx, JetStreamOptions{URL: srv.URL(), Stream: jsTestStream, Subjects: []string{"app.*.*"},
		TLS: other.ClientTLS(t), ConnectTimeout: 3 * time.Second}, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connected to a server whose certificate another CA signed: %v", err)
	}
	// Without TLS the server refuses the client.
	_, err = NewJetStream(ctx, JetStreamOptions{URL: srv.URL(), Stream: jsTestStream, Subjects: []string{"app.*.*"},
		ConnectTimeout: 3 * time.Second}, nil)
	if err == nil {
		t.Fatal("connected without TLS to a server that requires it")
	}
}

func TestStanAuthAndTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	for _, tc := range testenv.NATSAuthCases(t, pki, "_STAN.pub.>") {
		t.Run(strings.ReplaceAll(tc.Kind, "/", "-"), func(t *testing.T) {
			srv := testenv.StartStanWith(t, tc.Security)
			log, hook := logtest.NewNullLogger()
			log.SetLevel(logrus.DebugLevel)
			tlsConfig := pki.ClientTLS(t)
			opts := StanOptions{URL: srv.URL(), ClusterID: srv.ClusterID, ClientID: fmt.Sprintf("sec-%d", clientSeq.Add(1)),
				Auth: authOf(tc.Producer), TLS: tlsConfig, AckTimeout: 5 * time.Second}
			s, err := NewStan(opts, log)
			if err != nil {
				t.Fatalf("NewStan over TLS with %s: %v", tc.Kind, err)
			}
			t.Cleanup(func() { _ = s.Close() })
			msgs := makeMsgs("sec", 4, []string{"shop.orders"}, 10)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Publish(ctx, msgs); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if got := srv.ReadChannel(t, "shop.orders"); len(got) != len(msgs) {
				t.Fatalf("channel holds %d messages, want %d", len(got), len(msgs))
			}
			probe := opts
			probe.ClientID += "-probe"
			if err := ProbeStan(probe); err != nil {
				t.Errorf("ProbeStan: %v", err)
			}

			for name, auth := range map[string]NATSAuth{"wrong": authOf(tc.Wrong), "none": {}} {
				bad := opts
				bad.ClientID, bad.Auth, bad.ConnectTimeout = opts.ClientID+"-"+name, auth, 3*time.Second
				_, err := NewStan(bad, log)
				t.Logf("%s credentials: %v", name, err)
				assertRefused(t, err, tc.Secrets)
				assertRefused(t, ProbeStan(bad), tc.Secrets)
			}
			if tc.Consumer != (testenv.Credentials{}) {
				stanConsumerCannotPublish(t, srv, authOf(tc.Consumer), tlsConfig)
			}
			assertNoSecret(t, "log", logText(hook), tc.Secrets)
		})
	}
}

// A consumer's user may read the producer's subjects but not publish to
// them: the server answers a publish with a permissions violation.
func TestConsumerUserCannotPublishProducerSubjects(t *testing.T) {
	pki := testenv.NewPKI(t)
	for _, tc := range testenv.NATSAuthCases(t, pki, "app.>") {
		if tc.Consumer == (testenv.Credentials{}) {
			continue // a token has no per-user permissions
		}
		t.Run(strings.ReplaceAll(tc.Kind, "/", "-"), func(t *testing.T) {
			srv := testenv.StartNATSWith(t, testenv.NATSOptions{Security: tc.Security})
			opts, err := SecurityOptions(authOf(tc.Consumer), pki.ClientTLS(t))
			if err != nil {
				t.Fatal(err)
			}
			asyncErr := make(chan error, 4)
			nc, err := nats.Connect(srv.URL(), append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				asyncErr <- err
			}))...)
			if err != nil {
				t.Fatalf("the consumer cannot connect: %v", err)
			}
			defer nc.Close()
			sub, err := nc.SubscribeSync("app.shop.orders")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			if err := nc.Publish("app.shop.orders", []byte("forged")); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-asyncErr:
				if !errors.Is(AuthError(err), ErrPermission) {
					t.Errorf("publish refused with %v, want a permissions violation", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the server accepted a publish of the consumer's user to the producer's subject")
			}
			if _, err := sub.NextMsg(500 * time.Millisecond); err == nil {
				t.Error("the forged message was delivered")
			}
		})
	}
}

func TestSecurityOptionsRefusesTwoKinds(t *testing.T) {
	_, err := SecurityOptions(NATSAuth{User: "u", Password: "hunter2-secret", Token: "tok-secret"}, nil)
	if err == nil {
		t.Fatal("accepted a password and a token")
	}
	assertNoSecret(t, "error", err.Error(), []string{"hunter2-secret", "tok-secret"})
	_, err = SecurityOptions(NATSAuth{NKeySeedFile: testenv.SecretFile(t, "bad.nk", "SUnot-a-seed-secret")}, nil)
	if err == nil {
		t.Fatal("accepted an invalid seed")
	}
	assertNoSecret(t, "error", err.Error(), []string{"not-a-seed-secret"})
}

// stanConsumerCannotPublish checks that a consumer's user, denied
// "_STAN.pub.>", connects but cannot publish: the server refuses with a
// permissions violation and nothing is stored.
func stanConsumerCannotPublish(t *testing.T, srv *testenv.Stan, auth NATSAuth, tlsConfig *tls.Config) {
	t.Helper()
	opts, err := SecurityOptions(auth, tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	asyncErr := make(chan error, 4)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErr <- err }))
	sc, err := stan.Connect(srv.ClusterID, fmt.Sprintf("sec-consumer-%d", clientSeq.Add(1)), stan.NatsURL(srv.URL()),
		stan.PubAckWait(time.Second), stan.NatsOptions(opts...))
	if err != nil {
		t.Fatalf("the consumer cannot connect: %v", err)
	}
	defer sc.Close()
	before := srv.ChannelCount(t, "shop.orders")
	if err := sc.Publish("shop.orders", []byte("forged")); err == nil {
		t.Fatal("the consumer's user published to the producer's channel")
	}
	select {
	case err := <-asyncErr:
		if !errors.Is(AuthError(err), ErrPermission) {
			t.Errorf("publish refused with %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("no permissions violation reported")
	}
	if got := srv.ChannelCount(t, "shop.orders"); got != before {
		t.Errorf("channel holds %d messages, want %d", got, before)
	}
}
