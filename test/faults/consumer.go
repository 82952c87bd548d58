package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
)

// Consumer is an SDK client subscribed to tables of a Cluster's broker,
// recording every change it hands over, with the time it did.
type Consumer struct {
	Client *client.Client
	// Subs are the subscriptions, by table ("db.table").
	Subs map[string]*client.Subscription

	t  testing.TB
	mu sync.Mutex
	// handed holds, per table, the changes handed over, in order.
	handed map[string][]Handed
	errs   []error
	notify chan struct{}
}

// Handed is one change a Consumer's handler got.
type Handed struct {
	ID string
	// RowID is the after (or before) image's id column.
	RowID int64
	At    time.Time
}

// ConsumerOptions adjusts StartConsumer.
type ConsumerOptions struct {
	// ClientID defaults to "fx-consumer".
	ClientID string
	// DedupFile, when set, is a bolt dedup file (relative to the test's
	// temp dir when not absolute).
	DedupFile string
	// Config, when set, changes the client's config before it connects.
	Config func(*client.Config)
	// Delay is how long the handler takes per change (to let a backlog
	// build up).
	Delay time.Duration
}

// StartConsumer connects an SDK client to c's broker and subscribes to
// tables as raw envelopes; it is closed at test cleanup.
func StartConsumer(t testing.TB, c *Cluster, tables []string, opts ConsumerOptions) *Consumer {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "fx-consumer"
	}
	cfg := client.Config{ClientID: opts.ClientID, RetryMin: 50 * time.Millisecond, RetryMax: time.Second}
	switch c.Broker.Kind {
	case e2e.JetStream:
		cfg.Broker, cfg.Host, cfg.Stream = client.BrokerJetStream, c.Broker.URL(), JetStreamStream
	default:
		cfg.Broker, cfg.Host, cfg.Port, cfg.ClusterID = client.BrokerStan, "nats://"+c.Broker.Host, strconv.Itoa(c.Broker.Port), c.Broker.ClusterID
	}
	k := &Consumer{t: t, Subs: map[string]*client.Subscription{}, handed: map[string][]Handed{}, notify: make(chan struct{}, 1)}
	cfg.OnError = func(err error) {
		k.mu.Lock()
		k.errs = append(k.errs, err)
		k.mu.Unlock()
	}
	if opts.DedupFile != "" {
		path := opts.DedupFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(c.Env.Dir, path)
		}
		d, err := client.OpenBoltDedup(path)
		if err != nil {
			t.Fatalf("faults: consumer dedup file: %v", err)
		}
		cfg.Dedup = d
		t.Cleanup(func() { _ = d.Close() })
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	cl, err := client.NewClient(cfg)
	if err != nil {
		t.Fatalf("faults: consumer: %v", err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	k.Client = cl
	for _, table := range tables {
		db, tbl, _ := strings.Cut(table, ".")
		sub, err := cl.SubscribeEnvelope(db, tbl, func(_ context.Context, env *envelope.Envelope, _ []byte) error {
			time.Sleep(opts.Delay)
			k.record(table, env)
			return nil
		})
		if err != nil {
			t.Fatalf("faults: consumer subscribe %s: %v", table, err)
		}
		k.Subs[table] = sub
	}
	return k
}

func (k *Consumer) record(table string, env *envelope.Envelope) {
	img := env.After
	if img == nil {
		img = env.Before
	}
	var id int64
	_ = json.Unmarshal(img["id"], &id)
	k.mu.Lock()
	k.handed[table] = append(k.handed[table], Handed{ID: env.ID, RowID: id, At: time.Now()})
	k.mu.Unlock()
	select {
	case k.notify <- struct{}{}:
	default:
	}
}

// Handed returns what the consumer handed over on table so far.
func (k *Consumer) Handed(table string) []Handed {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Handed(nil), k.handed[table]...)
}

// Errors returns what the client reported through Config.OnError.
func (k *Consumer) Errors() []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]error(nil), k.errs...)
}

// FirstHandedAfter returns how long after t the consumer handed over its
// first change on table, waiting up to timeout; -1 when it handed none.
func (k *Consumer) FirstHandedAfter(table string, t time.Time, timeout time.Duration) time.Duration {
	deadline := time.Now().Add(timeout)
	for {
		h := k.Handed(table)
		for i := len(h) - 1; i >= 0 && h[i].At.After(t); i-- {
			if i == 0 || !h[i-1].At.After(t) {
				return h[i].At.Sub(t)
			}
		}
		if time.Now().After(deadline) {
			return -1
		}
		select {
		case <-k.notify:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitHanded waits until table's handed-over row ids include every id of
// want; false after timeout.
func (k *Consumer) WaitHanded(table string, want []int64, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		have := map[int64]bool{}
		for _, h := range k.Handed(table) {
			have[h.RowID] = true
		}
		missing := 0
		for _, id := range want {
			if !have[id] {
				missing++
			}
		}
		if missing == 0 {
			return true
		}
		select {
		case <-k.notify:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return false
		}
	}
}

// ConsumerResult is what a Consumer handed over against what was committed.
type ConsumerResult struct {
	Committed, HandedOver, Duplicates, Lost int
	// Problems lists order and loss problems.
	Problems []string
}

// Check compares what k handed over on each table with the committed ids
// (in commit order): every id once, in order.
func (k *Consumer) Check(committed map[string][]int64) ConsumerResult {
	var r ConsumerResult
	for table, ids := range committed {
		handed := k.Handed(table)
		r.Committed += len(ids)
		seen := map[int64]bool{}
		var order []int64
		for _, h := range handed {
			if seen[h.RowID] {
				r.Duplicates++
				continue
			}
			seen[h.RowID] = true
			order = append(order, h.RowID)
		}
		r.HandedOver += len(order)
		want := map[int64]bool{}
		for _, id := range ids {
			want[id] = true
			if !seen[id] {
				r.Lost++
			}
		}
		var expect []int64
		for _, id := range ids {
			if seen[id] {
				expect = append(expect, id)
			}
		}
		var got []int64
		for _, id := range order {
			if want[id] {
				got = append(got, id)
			} else {
				r.Problems = append(r.Problems, fmt.Sprintf("%s: handed over id %d, which was not committed", table, id))
			}
		}
		for i := range expect {
			if got[i] != expect[i] {
				r.Problems = append(r.Problems, fmt.Sprintf("%s: handover %d is id %d, commit order says %d", table, i, got[i], expect[i]))
				break
			}
		}
	}
	if r.Lost > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d committed changes never handed over", r.Lost))
	}
	if r.Duplicates > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d changes handed over twice", r.Duplicates))
	}
	return r
}

// String renders the counts.
func (r ConsumerResult) String() string {
	return fmt.Sprintf("committed=%d handed_over=%d duplicates=%d lost=%d", r.Committed, r.HandedOver, r.Duplicates, r.Lost)
}
