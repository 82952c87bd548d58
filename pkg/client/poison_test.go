package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/test/e2e"
)

// deadRecord is what the SDK publishes on the dead-letter subject.
type deadRecord struct {
	Subject  string `json:"subject"`
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	Error    string `json:"error"`
	Data     []byte `json:"data"`
}

// TestPoisonMessages: on one table, a message that cannot be decoded
// (garbage bytes, an envelope of an unknown version, a value that does not
// fit its field) sits between good changes. With OnPoison block the
// subscription hands over the change before it, stops there, reports the
// message (OnError and Err) and hands over nothing after it; with
// deadletter it copies the message to the dead-letter subject, naming it
// and the error, and hands over the rest in order.
func TestPoisonMessages(t *testing.T) {
	t.Parallel()
	kinds := []struct {
		name string
		// poison writes the bad message between the good ids 1 and 2.
		poison func(t *testing.T, e *e2e.Env)
		want   string
	}{
		{"garbage", func(t *testing.T, e *e2e.Env) {
			if err := e.Stan.Conn(t, "injector").Publish("shop.item", []byte("\x00\xffgarbage")); err != nil {
				t.Fatal(err)
			}
		}, "invalid character"},
		{"version 2", func(t *testing.T, e *e2e.Env) {
			raw := e.Stan.ReadChannel(t, "shop.item")[0]
			v2 := strings.Replace(string(raw), `"v":1`, `"v":2`, 1)
			if err := e.Stan.Conn(t, "injector").Publish("shop.item", []byte(v2)); err != nil {
				t.Fatal(err)
			}
		}, "envelope version 2 is not supported"},
		{"overflow", func(t *testing.T, e *e2e.Env) {
			e.DB.Exec(t, "INSERT INTO shop.item VALUES (1000, 'x', 300)")
			e.WaitFor("shop.item", 2, 30*time.Second)
		}, "value 300 overflows int8"},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			e, _ := newEnv(t, e2e.Stan)
			e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20), qty INT)")
			var blockLog, deadLog errorLog
			blocked, dead := newRecorder(), newRecorder()
			subscribe := func(id string, rec *recorder, log *errorLog, policy string) *client.Subscription {
				c := newClient(t, e, id, func(cfg *client.Config) { cfg.OnError, cfg.OnPoison = log.add, policy })
				sub, err := client.Subscribe(c, "shop", "item", func(_ context.Context, ch client.Change[SmallItem]) error {
					rec.add(ch.After.ID)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return sub
			}
			blockSub := subscribe("c-block", blocked, &blockLog, client.PoisonBlock)
			subscribe("c-dead", dead, &deadLog, client.PoisonDeadLetter)

			e.DB.Exec(t, "INSERT INTO shop.item VALUES (1, 'a', 1)")
			e.WaitFor("shop.item", 1, 30*time.Second)
			k.poison(t, e)
			e.DB.Exec(t, "INSERT INTO shop.item VALUES (2, 'b', 2)", "INSERT INTO shop.item VALUES (3, 'c', 3)")

			dead.waitCount(t, 3, 30*time.Second)
			wantIDs(t, "deadletter", dead.snapshot(), 1, 3)
			records := e.Stan.ReadChannel(t, "dbsync_poison.c-dead")
			if len(records) != 1 {
				t.Fatalf("dead-letter channel holds %d records, want 1", len(records))
			}
			var rec deadRecord
			if err := json.Unmarshal(records[0], &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Subject != "shop.item" || rec.ClientID != "c-dead" || !strings.Contains(rec.Error, k.want) || len(rec.Data) == 0 {
				t.Fatalf("dead-letter record %+v; want subject shop.item, client c-dead, an error containing %q and the message", rec, k.want)
			}
			if n := count[*client.PoisonError](&deadLog); n != 1 {
				t.Errorf("deadletter: %d poison errors reported, want 1", n)
			}

			deadline := time.Now().Add(10 * time.Second)
			for blockSub.Err() == nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			var perr *client.PoisonError
			if !errors.As(blockSub.Err(), &perr) || !strings.Contains(perr.Error(), k.want) {
				t.Fatalf("block: Err() = %v, want a PoisonError containing %q", blockSub.Err(), k.want)
			}
			time.Sleep(500 * time.Millisecond)
			wantIDs(t, "block", blocked.snapshot(), 1, 1)
			if n := count[*client.PoisonError](&blockLog); n != 1 {
				t.Errorf("block: %d poison errors reported, want 1", n)
			}
		})
	}
}

// SmallItem has a field too small for qty 300.
type SmallItem struct {
	ID   int64  `db:"id"`
	Name string `db:"name"`
	Qty  int8   `db:"qty"`
}

// TestJetStreamPoisonDeadLetter: the JetStream transport copies an
// undecodable message to a stream on the dead-letter subject and goes on;
// without a stream for that subject the copy fails, the message is not
// acknowledged, and the SDK tries again until the stream exists.
func TestJetStreamPoisonDeadLetter(t *testing.T) {
	t.Parallel()
	b := newJSBroker(t)
	var log errorLog
	rec := newRecorder()
	c := b.client(t, "c-jsdead", func(cfg *client.Config) { cfg.OnPoison, cfg.OnError = client.PoisonDeadLetter, log.add })
	subscribeItems(t, c, rec)
	b.publish(t, "shop", "item", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.js.Publish(ctx, jsPrefix+"shop.item", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	b.publish(t, "shop", "item", 2)
	rec.waitCount(t, 1, 20*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for count[*client.DeliveryError](&log) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed dead-letter copy reported: %v", log.errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := rec.snapshot(); len(got) != 1 {
		t.Fatalf("handed over %v while the dead-letter copy cannot be stored", got)
	}
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: "POISON", Subjects: []string{"dbsync_poison.>"}}); err != nil {
		t.Fatal(err)
	}
	rec.waitCount(t, 2, 20*time.Second)
	wantIDs(t, "after the dead-letter stream exists", rec.snapshot(), 1, 2)
	st, err := b.js.Stream(ctx, "POISON")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "dbsync_poison.c-jsdead")
	if err != nil {
		t.Fatal(err)
	}
	var r deadRecord
	if err := json.Unmarshal(m.Data, &r); err != nil || string(r.Data) != "not json" || r.Subject != jsPrefix+"shop.item" {
		t.Fatalf("dead-letter record %s: %v", m.Data, err)
	}
	if count[*client.PoisonError](&log) != 1 || count[*client.DeliveryError](&log) == 0 {
		t.Fatalf("reported %v; want one PoisonError and the failed copies", log.errs)
	}
}
