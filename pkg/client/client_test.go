package client_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/test/e2e"
)

var producerBin string

func TestMain(m *testing.M) {
	bin, cleanup := e2e.MustBuildProducer()
	producerBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// forEachBroker runs f once per broker the SDK consumes from, each as a
// subtest named after the broker (Kafka: franz-go's in-process cluster).
func forEachBroker(t *testing.T, f func(t *testing.T, broker string)) {
	forBrokers(t, []string{e2e.Stan, e2e.JetStream, e2e.Kafka}, f)
}

// forBrokers runs f once per broker of brokers, each as a subtest.
func forBrokers(t *testing.T, brokers []string, f func(t *testing.T, broker string)) {
	for _, broker := range brokers {
		t.Run(broker, func(t *testing.T) { f(t, broker) })
	}
}

// newEnv starts MariaDB, the broker (e2e.Stan or e2e.JetStream) and a
// running producer publishing to it.
func newEnv(t *testing.T, broker string) (*e2e.Env, *e2e.Proc) {
	t.Helper()
	e := e2e.NewEnvBroker(t, producerBin, broker)
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	return e, p
}

// newClient connects an SDK client to the environment's broker.
func newClient(t *testing.T, e *e2e.Env, clientID string, mod func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{ClientID: clientID, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	switch e.Broker {
	case e2e.JetStream:
		cfg.Broker, cfg.Host = client.BrokerJetStream, e.NATS.URL()
	case e2e.Kafka:
		cfg.Broker, cfg.Brokers = client.BrokerKafka, e.Kafka.Brokers
	default:
		cfg.Broker, cfg.ClusterID, cfg.Host, cfg.Port = client.BrokerStan, e.Stan.ClusterID, "nats://"+e.Stan.Host, strconv.Itoa(e.Stan.Port)
	}
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

// Item is a small table model: table "shop.item" by snake_case.
type Item struct {
	ID   int64  `db:"id"`
	Name string `db:"name"`
}

// recorder collects handled ids per subject.
type recorder struct {
	mu  sync.Mutex
	ids []int64
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1<<20)} }

func (r *recorder) add(id int64) {
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *recorder) snapshot() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.ids...)
}

// waitCount waits until n ids were recorded.
func (r *recorder) waitCount(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for len(r.snapshot()) < n {
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("handled %d changes, want %d within %s", len(r.snapshot()), n, timeout)
		}
	}
}

// TestHandlerFailureKeepsOrder: a handler that fails twice (an error, then a
// panic) gets the same change a third time, and later changes of the table
// wait for it.
func TestHandlerFailureKeepsOrder(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
		var errs []error
		var mu sync.Mutex
		c := newClient(t, e, "c-retry", func(cfg *client.Config) {
			cfg.OnError = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
		})
		rec := newRecorder()
		attempts := map[int64]int{}
		_, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
			attempts[ch.After.ID]++
			if ch.After.ID == 1 && attempts[1] == 1 {
				return errFailing
			}
			if ch.After.ID == 1 && attempts[1] == 2 {
				panic("handler bug") // a panic counts as a failure too
			}
			rec.add(ch.After.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		e.DB.Exec(t, "INSERT INTO shop.item VALUES (1, 'a')", "INSERT INTO shop.item VALUES (2, 'b')", "INSERT INTO shop.item VALUES (3, 'c')")
		rec.waitCount(t, 3, 30*time.Second)
		if got := rec.snapshot(); got[0] != 1 || got[1] != 2 || got[2] != 3 {
			t.Fatalf("handled %v, want [1 2 3]", got)
		}
		if attempts[1] != 3 || attempts[2] != 1 || attempts[3] != 1 {
			t.Fatalf("attempts %v, want 1:3 2:1 3:1", attempts)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(errs) != 2 || !strings.Contains(errs[0].Error(), "shop.item") || !strings.Contains(errs[0].Error(), "attempt 1") ||
			!strings.Contains(errs[1].Error(), "handler panicked: handler bug") {
			t.Fatalf("errors reported: %v", errs)
		}
	})
}

type failing struct{}

func (failing) Error() string { return "handler says no" }

var errFailing = failing{}

// TestConsumerRestartResumes: a consumer closed in the middle resumes, with
// a new client of the same ClientID and a bolt dedup file, with no change
// lost and none handed to the handler twice.
func TestConsumerRestartResumes(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
		dedupPath := t.TempDir() + "/dedup.db"
		rec := newRecorder()
		run := func() (*client.Client, *client.BoltDedup) {
			dedup, err := client.OpenBoltDedup(dedupPath)
			if err != nil {
				t.Fatal(err)
			}
			c := newClient(t, e, "c-restart", func(cfg *client.Config) { cfg.Dedup = dedup })
			if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
				rec.add(ch.After.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dedup.Close() })
			return c, dedup
		}
		c, dedup := run()
		for i := 1; i <= 100; i++ {
			e.DB.Exec(t, "INSERT INTO shop.item VALUES ("+strconv.Itoa(i)+", 'x')")
			if i == 40 {
				rec.waitCount(t, 40, 30*time.Second)
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				if err := dedup.Close(); err != nil {
					t.Fatal(err)
				}
			}
		}
		run()
		rec.waitCount(t, 100, 30*time.Second)
		time.Sleep(500 * time.Millisecond) // anything extra would show now
		got := rec.snapshot()
		if len(got) != 100 {
			t.Fatalf("handled %d changes, want exactly 100", len(got))
		}
		for i, id := range got {
			if id != int64(i+1) {
				t.Fatalf("change %d is id %d", i, id)
			}
		}
	})
}

// TestProducerKillHandsNoDuplicate: the producer is killed under load
// (replaying from its checkpoint each time); the handler still sees every
// committed row exactly once, in commit order.
func TestProducerKillHandsNoDuplicate(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, p := newEnv(t, broker)
		e.Set("Batch.MaxRows", 32)
		e.DB.Exec(t, "CREATE DATABASE wl")
		recs := []*recorder{newRecorder(), newRecorder()}
		c := newClient(t, e, "c-kill", nil)
		l := e2e.StartLoad(t, e.DB.DB(t), len(recs))
		for i, rec := range recs {
			if _, err := client.Subscribe(c, "wl", "t"+strconv.Itoa(i), func(ctx context.Context, ch client.Change[Item]) error {
				rec.add(ch.After.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		for k := 0; k < 8; k++ {
			time.Sleep(300 * time.Millisecond)
			p.Kill()
			p = e.Start()
		}
		committed := l.Finish()
		for i, rec := range recs {
			rec.waitCount(t, len(committed[i]), time.Minute)
		}
		time.Sleep(time.Second)
		for i, rec := range recs {
			got := rec.snapshot()
			if len(got) != len(committed[i]) {
				t.Fatalf("table t%d: handled %d, committed %d (a duplicate reached the handler or a row was lost)", i, len(got), len(committed[i]))
			}
			for k := range got {
				if got[k] != committed[i][k] {
					t.Fatalf("table t%d: change %d is id %d, committed %d", i, k, got[k], committed[i][k])
				}
			}
		}
		dups := 0
		for i := range recs {
			dups += e.Count("wl.t"+strconv.Itoa(i)) - len(committed[i])
		}
		t.Logf("8 producer kills: %d duplicates on the broker, none handed to the handler", dups)
	})
}

// Narrow has a field too small for its column.
type Narrow struct {
	ID  int64 `db:"id"`
	Qty int8  `db:"qty"`
}

func (Narrow) TableName() string { return "shop.narrow" }

// TestIncompatibleFieldNamesTableColumnField: a value that does not fit its
// field is reported with table, column and field, the handler is not
// called, and the change is not skipped.
func TestIncompatibleFieldNamesTableColumnField(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.narrow (id BIGINT PRIMARY KEY, qty INT)")
		reported := make(chan error, 100)
		c := newClient(t, e, "c-narrow", func(cfg *client.Config) { cfg.OnError = func(err error) { reported <- err } })
		called := make(chan int64, 10)
		if _, err := client.Subscribe(c, "", "", func(ctx context.Context, ch client.Change[Narrow]) error {
			called <- ch.After.ID
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		e.DB.Exec(t, "INSERT INTO shop.narrow VALUES (1, 300)", "INSERT INTO shop.narrow VALUES (2, 5)")
		select {
		case err := <-reported:
			for _, want := range []string{"shop.narrow", `"qty"`, "Narrow.Qty", "int8"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no error reported")
		}
		select {
		case id := <-called:
			t.Fatalf("handler called with id %d while id 1 cannot be decoded", id)
		case <-time.After(500 * time.Millisecond):
		}
	})
}

// TestBrokerRestart: the broker is stopped and started again (keeping its
// data) while a consumer runs; the consumer goes on by itself and handles
// every change once, in order. (The in-process Kafka cluster cannot be
// restarted.)
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	forBrokers(t, []string{e2e.Stan, e2e.JetStream}, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
		rec := newRecorder()
		// NATS Streaming sends a message whose delivery was lost in the
		// restart again only after AckWait (default 30s).
		c := newClient(t, e, "c-broker-restart", func(cfg *client.Config) { cfg.AckWait = 3 * time.Second })
		if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
			rec.add(ch.After.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			e.DB.Exec(t, "INSERT INTO shop.item VALUES ("+strconv.Itoa(i)+", 'x')")
		}
		rec.waitCount(t, 5, 30*time.Second)
		e.StopBroker()
		for i := 6; i <= 10; i++ { // committed while the broker is down
			e.DB.Exec(t, "INSERT INTO shop.item VALUES ("+strconv.Itoa(i)+", 'x')")
		}
		time.Sleep(time.Second)
		e.StartBroker()
		for i := 11; i <= 15; i++ {
			e.DB.Exec(t, "INSERT INTO shop.item VALUES ("+strconv.Itoa(i)+", 'x')")
		}
		rec.waitCount(t, 15, time.Minute)
		time.Sleep(500 * time.Millisecond)
		got := rec.snapshot()
		if len(got) != 15 {
			t.Fatalf("handled %v, want 1..15 once each", got)
		}
		for i, id := range got {
			if id != int64(i+1) {
				t.Fatalf("handled %v, want 1..15 in order", got)
			}
		}
	})
}
