package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/test/testenv"
)

// secEnvelope is an insert of row id into shop.items.
func secEnvelope(t *testing.T, id int64) mq.Message {
	t.Helper()
	pos := uint32(100 + id)
	env := envelope.Envelope{V: envelope.Version, ID: fmt.Sprintf("mysql-bin.000001:%d:0", pos),
		Source: envelope.Source{Name: "test", ServerID: 1, File: "mysql-bin.000001", Pos: pos, TS: time.Now().UTC().Truncate(time.Second)},
		DB:     "shop", Table: "items", Type: envelope.TypeInsert, PK: []string{"id"},
		After: map[string]json.RawMessage{"id": json.RawMessage(fmt.Sprint(id))}}
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return mq.Message{ID: env.ID, Data: data}
}

func withCredentials(cfg *client.Config, c testenv.Credentials) {
	cfg.User, cfg.Password, cfg.Token, cfg.NKeySeedFile, cfg.CredsFile = c.User, c.Password, c.Token, c.NKeySeedFile, c.CredsFile
}

// TestConsumerAuthAndTLS: the SDK consumes over TLS (the server's
// certificate checked against the test CA and its name) with each kind of
// authentication, from JetStream and NATS Streaming, as a user not allowed
// to publish to the producer's subjects; wrong credentials fail NewClient
// with ErrUnauthorized and no secret in the error or the log.
func TestConsumerAuthAndTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	for _, broker := range []string{client.BrokerJetStream, client.BrokerStan} {
		denied := "dbsync.>"
		if broker == client.BrokerStan {
			denied = "_STAN.pub.>"
		}
		for _, tc := range testenv.NATSAuthCases(t, pki, denied) {
			t.Run(broker+"/"+strings.ReplaceAll(tc.Kind, "/", "-"), func(t *testing.T) {
				consumer := tc.Consumer
				if consumer == (testenv.Credentials{}) {
					consumer = tc.Producer // a token has no per-user permissions
				}
				producerAuth := mq.NATSAuth{User: tc.Producer.User, Password: tc.Producer.Password, Token: tc.Producer.Token,
					NKeySeedFile: tc.Producer.NKeySeedFile, CredsFile: tc.Producer.CredsFile}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				msgs := []mq.Message{secEnvelope(t, 1), secEnvelope(t, 2)}
				cfg := client.Config{Broker: broker, ClientID: "sec-consumer", TLS: client.TLS{CA: pki.CA}, StartAt: client.StartAtFirst}
				var q mq.MessageQueue
				var err error
				if broker == client.BrokerJetStream {
					srv := testenv.StartNATSWith(t, testenv.NATSOptions{Security: tc.Security})
					cfg.Host = srv.URL()
					q, err = mq.NewJetStream(ctx, mq.JetStreamOptions{URL: srv.URL(), Stream: "DBSYNC", Subjects: []string{"dbsync.*.*"},
						Auth: producerAuth, TLS: pki.ClientTLS(t)}, nil)
					for i := range msgs {
						msgs[i].Subject = "dbsync.shop.items"
					}
				} else {
					srv := testenv.StartStanWith(t, tc.Security)
					cfg.Host, cfg.ClusterID = srv.URL(), srv.ClusterID
					q, err = mq.NewStan(mq.StanOptions{URL: srv.URL(), ClusterID: srv.ClusterID, ClientID: "sec-producer",
						Auth: producerAuth, TLS: pki.ClientTLS(t)}, nil)
					for i := range msgs {
						msgs[i].Subject = "shop.items"
					}
				}
				if err != nil {
					t.Fatalf("producer: %v", err)
				}
				defer q.Close()
				if err := q.Publish(ctx, msgs); err != nil {
					t.Fatalf("producer: publish: %v", err)
				}

				var logBuf bytes.Buffer
				log := logrus.New()
				log.SetOutput(&logBuf)
				log.SetLevel(logrus.DebugLevel)
				cfg.Logger = log

				bad := cfg
				withCredentials(&bad, tc.Wrong)
				_, err = client.NewClient(bad)
				if err == nil || !errors.Is(err, client.ErrUnauthorized) {
					t.Errorf("NewClient with wrong credentials: %v, want client.ErrUnauthorized", err)
				}
				if err != nil {
					t.Logf("wrong credentials: %v", err)
					assertNoSecrets(t, "error", err.Error(), tc.Secrets)
				}

				withCredentials(&cfg, consumer)
				c, err := client.NewClient(cfg)
				if err != nil {
					t.Fatalf("NewClient over TLS with %s: %v", tc.Kind, err)
				}
				defer c.Close()
				got := make(chan string, 4)
				if _, err := c.SubscribeEnvelope("shop", "items", func(_ context.Context, env *envelope.Envelope, _ []byte) error {
					got <- env.ID
					return nil
				}); err != nil {
					t.Fatalf("SubscribeEnvelope: %v", err)
				}
				for _, m := range msgs {
					select {
					case id := <-got:
						if id != m.ID {
							t.Fatalf("got %s, want %s", id, m.ID)
						}
					case <-ctx.Done():
						t.Fatalf("%s never arrived", m.ID)
					}
				}
				c.Close()
				assertNoSecrets(t, "log", logBuf.String(), tc.Secrets)
			})
		}
	}
}

// TestConsumerTLSRefusesAnUntrustedServer: a server whose certificate the
// configured CA did not sign is refused.
func TestConsumerTLSRefusesAnUntrustedServer(t *testing.T) {
	pki, other := testenv.NewPKI(t), testenv.NewPKI(t)
	srv := testenv.StartNATSWith(t, testenv.NATSOptions{Security: testenv.NATSSecurity{PKI: pki}})
	_, err := client.NewClient(client.Config{Broker: client.BrokerJetStream, ClientID: "c", Host: srv.URL(), TLS: client.TLS{CA: other.CA}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("NewClient against a server of another CA: %v", err)
	}
}

func assertNoSecrets(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s shows a secret: %s", what, text)
		}
	}
}
