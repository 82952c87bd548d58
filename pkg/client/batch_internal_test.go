package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// The tests here drive a Subscription's concurrency through a scripted
// transport: pure logic (who waits for whom when closing), which the
// broker tests cannot time precisely.

type scriptedDelivery struct {
	data  []byte
	mu    sync.Mutex
	acked bool
}

func (d *scriptedDelivery) Data() []byte { return d.data }
func (d *scriptedDelivery) Ack() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acked = true
	return nil
}
func (d *scriptedDelivery) isAcked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.acked
}

// scriptedTransport hands one run over from a goroutine; closing the
// subscription waits for it, as every real transport does.
type scriptedTransport struct{ run []delivery }

type scriptedSub struct{ done chan struct{} }

func (s *scriptedSub) Close() error { <-s.done; return nil }

func (t *scriptedTransport) subscribe(_ string, _ subOptions, handle func([]delivery)) (unsubscriber, error) {
	s := &scriptedSub{done: make(chan struct{})}
	go func() { defer close(s.done); handle(t.run) }()
	return s, nil
}

// publish (the dead letter) waits for its ctx: the client is closing.
func (t *scriptedTransport) publish(ctx context.Context, _ string, _ []byte) error {
	<-ctx.Done()
	return ctx.Err()
}
func (t *scriptedTransport) close() error { return nil }

func scriptedChange(pos uint32) []byte {
	env := envelope.Envelope{V: envelope.Version, ID: fmt.Sprintf("mysql-bin.000001:%d:0", pos),
		Source: envelope.Source{Name: "src", ServerID: 1, History: "h1", File: "mysql-bin.000001", Pos: pos, TS: time.Unix(1e9, 0).UTC()},
		DB:     "shop", Table: "item", Type: envelope.TypeInsert, PK: []string{"id"},
		After: map[string]json.RawMessage{"id": json.RawMessage(fmt.Sprint(pos))}}
	b, err := json.Marshal(env)
	if err != nil {
		panic(err)
	}
	return b
}

func scriptedClient(tr transport, onPoison string) *Client {
	log := logrus.New()
	log.SetOutput(io.Discard)
	c := &Client{cfg: Config{Dedup: NewMemoryDedup(), OnPoison: onPoison, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		DeadLetterSubject: "dl"}, log: log, decoders: map[reflect.Type]*Decoder{}, tr: tr}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// TestBatchCloseWhileWriting: Close comes while a batch is being written
// and the run holds an undecodable message and a change after it. Close
// returns (it used to wait forever: it held the subscription's lock while
// waiting for the delivery, which needed it to handle the poison message),
// the poison message and the change after it stay unacknowledged (they
// come again), and the batch written before them is acknowledged.
func TestBatchCloseWhileWriting(t *testing.T) {
	for _, policy := range []string{PoisonBlock, PoisonDeadLetter} {
		t.Run(policy, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			before := &scriptedDelivery{data: scriptedChange(100)}
			poison := &scriptedDelivery{data: []byte("not json")}
			after := &scriptedDelivery{data: scriptedChange(200)}
			c := scriptedClient(&scriptedTransport{run: []delivery{before, poison, after}}, policy)
			var handed []string
			_, err := c.SubscribeEnvelopeBatch("shop", "item", BatchOptions{MaxChanges: 10}, func(_ context.Context, b Batch[*envelope.Envelope]) error {
				for _, env := range b.Changes {
					handed = append(handed, env.ID)
				}
				if len(handed) == 1 {
					close(started)
					<-release // written although Close came meanwhile
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			<-started
			closed := make(chan struct{})
			go func() { _ = c.Close(); close(closed) }()
			time.Sleep(100 * time.Millisecond)
			close(release)
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("Client.Close hangs")
			}
			if len(handed) != 1 || !before.isAcked() || poison.isAcked() || after.isAcked() {
				t.Fatalf("handed over %v; acknowledged: before %v, poison %v, after %v (want only the change before)",
					handed, before.isAcked(), poison.isAcked(), after.isAcked())
			}
		})
	}
}

// TestBatchQueueGroupRefused: a batch subscription with a queue group is
// refused on the NATS brokers, naming the reason.
func TestBatchQueueGroupRefused(t *testing.T) {
	c := scriptedClient(&scriptedTransport{}, PoisonBlock)
	c.cfg.QueueGroup, c.cfg.Broker = "workers", BrokerJetStream
	_, err := c.SubscribeEnvelopeBatch("shop", "item", BatchOptions{}, func(context.Context, Batch[*envelope.Envelope]) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "QueueGroup") || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("got %v", err)
	}
}
