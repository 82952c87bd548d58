package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/testenv"
)

// jsBroker is a JetStream server with the producer's stream, fed with
// hand-written envelopes (no producer involved): it tests the JetStream
// transport on its own. Subjects carry the prefix "cdc." (ProName): the
// server refuses a stream on "*.*", which overlaps its "$JS.>" API.
type jsBroker struct {
	n   *testenv.NATS
	js  jetstream.JetStream
	pos atomic.Uint32
}

const jsPrefix = "cdc."

func newJSBroker(t *testing.T) *jsBroker {
	t.Helper()
	n := testenv.StartNATS(t)
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DBSYNC", Subjects: []string{jsPrefix + "*.*"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	b := &jsBroker{n: n, js: js}
	b.pos.Store(4)
	return b
}

// publish stores an insert of item id on subject db.table, with a binlog
// coordinate after every earlier one; it retries while the server restarts.
func (b *jsBroker) publish(t *testing.T, db, table string, id int64) {
	t.Helper()
	pos := b.pos.Add(100)
	env := envelope.Envelope{V: envelope.Version, ID: fmt.Sprintf("mysql-bin.000001:%d:0", pos),
		Source: envelope.Source{Name: "test", ServerID: 1, File: "mysql-bin.000001", Pos: pos, TS: time.Now().UTC().Truncate(time.Second)},
		DB:     db, Table: table, Type: envelope.TypeInsert, PK: []string{"id"},
		After: map[string]json.RawMessage{"id": json.RawMessage(fmt.Sprint(id)), "name": json.RawMessage(`"x"`)}}
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := b.js.Publish(ctx, jsPrefix+db+"."+table, data)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %s.%s id %d: %v", db, table, id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// client connects an SDK client with Broker "jetstream".
func (b *jsBroker) client(t *testing.T, clientID string, mod func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{Broker: client.BrokerJetStream, ClientID: clientID, Host: b.n.URL(), Prefix: jsPrefix,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// consumers returns the stream's consumers whose filter is subject.
func (b *jsBroker) consumers(t *testing.T, subject string) []*jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, "DBSYNC")
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.ConsumerInfo
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		if ci.Config.FilterSubject == subject {
			out = append(out, ci)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// subscribeItems subscribes c to shop.item, recording ids.
func subscribeItems(t *testing.T, c *client.Client, rec *recorder) {
	t.Helper()
	if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
		rec.add(ch.After.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func wantIDs(t *testing.T, what string, got []int64, from, to int64) {
	t.Helper()
	if len(got) != int(to-from+1) {
		t.Fatalf("%s: handled %v, want ids %d..%d in order", what, got, from, to)
	}
	for i, id := range got {
		if id != from+int64(i) {
			t.Fatalf("%s: handled %v, want ids %d..%d in order", what, got, from, to)
		}
	}
}

// TestJetStreamOrderRetryAck: a failing change is handed over again and the
// later ones wait for it; every change is acknowledged after its handler
// succeeded; the durable consumer has one message in flight at most.
func TestJetStreamOrderRetryAck(t *testing.T) {
	t.Parallel()
	b := newJSBroker(t)
	var errs atomic.Int32
	c := b.client(t, "c-order", func(cfg *client.Config) { cfg.OnError = func(error) { errs.Add(1) } })
	rec := newRecorder()
	attempts := map[int64]int{}
	if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
		attempts[ch.After.ID]++
		if ch.After.ID == 1 && attempts[1] < 3 {
			return errFailing
		}
		rec.add(ch.After.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 5; id++ {
		b.publish(t, "shop", "item", id)
	}
	rec.waitCount(t, 5, 20*time.Second)
	wantIDs(t, "order", rec.snapshot(), 1, 5)
	if attempts[1] != 3 || attempts[2] != 1 || attempts[5] != 1 || errs.Load() != 2 {
		t.Fatalf("attempts %v, %d errors reported; want 1:3 and one each for the rest, 2 errors", attempts, errs.Load())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cons := b.consumers(t, jsPrefix+"shop.item")
		if len(cons) != 1 {
			t.Fatalf("%d consumers on shop.item, want 1", len(cons))
		}
		ci := cons[0]
		if ci.Config.AckPolicy != jetstream.AckExplicitPolicy || ci.Config.MaxAckPending != 1 || ci.Config.Durable == "" ||
			ci.Config.AckWait != client.DefaultJetStreamAckWait || ci.Config.DeliverPolicy != jetstream.DeliverAllPolicy {
			t.Fatalf("consumer config %+v", ci.Config)
		}
		if ci.NumAckPending == 0 && ci.NumPending == 0 && ci.AckFloor.Stream == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s: ack pending %d, pending %d, ack floor %d; want all 5 acknowledged", ci.Name, ci.NumAckPending, ci.NumPending, ci.AckFloor.Stream)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJetStreamDurableResume: a client closed in the middle is replaced by a
// new one with the same ClientID, which resumes after the last acknowledged
// change; another ClientID gets everything.
func TestJetStreamDurableResume(t *testing.T) {
	t.Parallel()
	b := newJSBroker(t)
	rec := newRecorder()
	c := b.client(t, "c-resume", nil)
	subscribeItems(t, c, rec)
	for id := int64(1); id <= 5; id++ {
		b.publish(t, "shop", "item", id)
	}
	rec.waitCount(t, 5, 20*time.Second)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
	for id := int64(6); id <= 10; id++ {
		b.publish(t, "shop", "item", id)
	}
	// A fresh memory dedup: only the broker's durable position prevents
	// 1..5 from coming again.
	subscribeItems(t, b.client(t, "c-resume", nil), rec)
	other := newRecorder()
	subscribeItems(t, b.client(t, "c-other", nil), other)
	rec.waitCount(t, 10, 20*time.Second)
	other.waitCount(t, 10, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	wantIDs(t, "resumed", rec.snapshot(), 1, 10)
	wantIDs(t, "other client id", other.snapshot(), 1, 10)
	if n := len(b.consumers(t, jsPrefix+"shop.item")); n != 2 {
		t.Errorf("%d durable consumers on shop.item, want 2 (one per ClientID)", n)
	}
}

// TestJetStreamCloseDuringRetry: closing a client while its handler keeps
// failing returns promptly, and the change goes at once (not after AckWait)
// to the next client.
func TestJetStreamCloseDuringRetry(t *testing.T) {
	t.Parallel()
	b := newJSBroker(t)
	failed := make(chan error, 100)
	c := b.client(t, "c-stuck", func(cfg *client.Config) { cfg.OnError = func(err error) { failed <- err } })
	if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
		return errFailing
	}); err != nil {
		t.Fatal(err)
	}
	b.publish(t, "shop", "item", 1)
	b.publish(t, "shop", "item", 2)
	for range 2 {
		select {
		case <-failed:
		case <-time.After(20 * time.Second):
			t.Fatal("the failing handler was not called twice")
		}
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %s while a change was being retried", d)
	}
	rec := newRecorder()
	subscribeItems(t, b.client(t, "c-stuck", nil), rec)
	rec.waitCount(t, 2, 10*time.Second) // AckWait is 30s: the change was given back
	wantIDs(t, "after close", rec.snapshot(), 1, 2)
}

// TestJetStreamQueueGroup: members of a queue group share one durable
// consumer, each change going to exactly one member; a ClientID outside the
// group gets every change.
func TestJetStreamQueueGroup(t *testing.T) {
	t.Parallel()
	b := newJSBroker(t)
	var mu sync.Mutex
	seen := map[string][]int64{}
	for _, x := range []struct{ id, group string }{{"w1", "workers"}, {"w2", "workers"}, {"solo", ""}} {
		c := b.client(t, x.id, func(cfg *client.Config) { cfg.QueueGroup = x.group })
		if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
			mu.Lock()
			seen[x.id] = append(seen[x.id], ch.After.ID)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 40
	for id := int64(1); id <= n; id++ {
		b.publish(t, "shop", "item", id)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		w, solo := len(seen["w1"])+len(seen["w2"]), len(seen["solo"])
		mu.Unlock()
		if w >= n && solo >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers handled %d, solo %d, of %d", w, solo, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	wantIDs(t, "solo", seen["solo"], 1, n)
	count := map[int64]int{}
	for _, w := range []string{"w1", "w2"} {
		for i, id := range seen[w] {
			count[id]++
			if i > 0 && id <= seen[w][i-1] {
				t.Errorf("member %s handled %d after %d", w, id, seen[w][i-1])
			}
		}
	}
	for id := int64(1); id <= n; id++ {
		if count[id] != 1 {
			t.Errorf("change %d went to %d members", id, count[id])
		}
	}
	if len(seen["w1"]) == 0 || len(seen["w2"]) == 0 {
		t.Errorf("a member got nothing: w1 %d, w2 %d", len(seen["w1"]), len(seen["w2"]))
	}
	if k := len(b.consumers(t, jsPrefix+"shop.item")); k != 2 {
		t.Errorf("%d durable consumers on shop.item, want 2 (the group's and solo's)", k)
	}
}

// TestJetStreamStartPosition: a new durable consumer starts at the first
// stored change by default, with new ones only under StartAtNew; an existing
// one resumes regardless of StartAt.
func TestJetStreamStartPosition(t *testing.T) {
	t.Parallel()
	b := newJSBroker(t)
	b.publish(t, "shop", "item", 1)
	b.publish(t, "shop", "item", 2)
	first, fresh := newRecorder(), newRecorder()
	subscribeItems(t, b.client(t, "c-first", nil), first)
	cNew := b.client(t, "c-new", func(cfg *client.Config) { cfg.StartAt = client.StartAtNew })
	subscribeItems(t, cNew, fresh)
	b.publish(t, "shop", "item", 3)
	first.waitCount(t, 3, 20*time.Second)
	fresh.waitCount(t, 1, 20*time.Second)
	if err := cNew.Close(); err != nil {
		t.Fatal(err)
	}
	b.publish(t, "shop", "item", 4)
	subscribeItems(t, b.client(t, "c-new", func(cfg *client.Config) { cfg.StartAt = client.StartAtNew }), fresh)
	fresh.waitCount(t, 2, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	wantIDs(t, "StartAtFirst", first.snapshot()[:3], 1, 3)
	wantIDs(t, "StartAtNew, then resumed", fresh.snapshot(), 3, 4)
}

// TestJetStreamServerRestart: consumption goes on after the server was
// stopped and started again, without waiting for AckWait (an
// acknowledgement lost in the restart is sent again).
func TestJetStreamServerRestart(t *testing.T) {
	t.Parallel()
	b := newJSBroker(t)
	rec := newRecorder()
	subscribeItems(t, b.client(t, "c-restart", func(cfg *client.Config) { cfg.AckWait = time.Minute }), rec)
	b.publish(t, "shop", "item", 1)
	b.publish(t, "shop", "item", 2)
	rec.waitCount(t, 2, 20*time.Second)
	b.n.Shutdown(t)
	time.Sleep(2 * time.Second)
	b.n.Restart(t)
	b.publish(t, "shop", "item", 3)
	b.publish(t, "shop", "item", 4)
	rec.waitCount(t, 4, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	wantIDs(t, "across a restart", rec.snapshot(), 1, 4)
}

// TestJetStreamConfig: an unknown broker is refused naming the allowed
// values; a missing stream is refused naming it; JetStream needs no
// ClusterID.
func TestJetStreamConfig(t *testing.T) {
	t.Parallel()
	_, err := client.NewClient(client.Config{Broker: "rabbitmq", ClientID: "x", Host: "127.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), `"rabbitmq"`) || !strings.Contains(err.Error(), `"stan"`) || !strings.Contains(err.Error(), `"jetstream"`) || !strings.Contains(err.Error(), `"kafka"`) {
		t.Errorf("unknown broker: %v", err)
	}
	_, err = client.NewClient(client.Config{ClientID: "x", Host: "127.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "ClusterID") {
		t.Errorf("stan without ClusterID: %v", err)
	}
	_, err = client.NewClient(client.Config{Broker: client.BrokerJetStream, Host: "127.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "ClientID") || strings.Contains(err.Error(), "ClusterID") {
		t.Errorf("jetstream without ClientID: %v", err)
	}
	b := newJSBroker(t)
	c := b.client(t, "c-cfg", func(cfg *client.Config) { cfg.Stream = "NOPE" })
	_, err = client.Subscribe(c, "shop", "item", func(context.Context, client.Change[Item]) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `"NOPE"`) || !strings.Contains(err.Error(), "Config.Stream") {
		t.Errorf("missing stream: %v", err)
	}
	port := testenv.FreePort(t)
	_, err = client.NewClient(client.Config{Broker: client.BrokerJetStream, ClientID: "x", Host: "127.0.0.1", Port: fmt.Sprint(port)})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("nats://127.0.0.1:%d", port)) {
		t.Errorf("unreachable server: %v", err)
	}
}
