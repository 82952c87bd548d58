package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
)

// txStore is a "database" a batch handler writes to: the items and the
// SDK progress of each batch are stored in one step (as in one
// transaction), and it serves as the SDK's dedup store.
type txStore struct {
	mu       sync.Mutex
	items    []int64
	progress map[string]client.Progress
}

func newTxStore() *txStore { return &txStore{progress: map[string]client.Progress{}} }

// commit stores a batch's items and its progress together.
func (s *txStore) commit(ids []int64, key string, p client.Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = append(s.items, ids...)
	s.progress[key] = p
}

func (s *txStore) ids() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.items...)
}

func (s *txStore) Load(_ context.Context, key string) (client.Progress, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.progress[key]
	return p, ok, nil
}

func (s *txStore) Save(_ context.Context, key string, p client.Progress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress[key] = p
	return nil
}

func (s *txStore) Close() error { return nil }

// TestBatchSubscription: a batch subscription gets a table's changes in
// order in batches of at most MaxChanges (several changes per batch when
// they wait), each change once; a failing handler gets the same batch
// again; Batch.Progress ends at the batch's last change. A handler that
// stored a batch with its progress and died before the acknowledgement
// (the client closed) does not get it again from a new client using the
// stored progress as its dedup store: exactly once into the store.
func TestBatchSubscription(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
		store := newTxStore()
		const rows, maxChanges = 600, 50
		var (
			mu        sync.Mutex
			sizes     []int
			failedIDs []int64
			failed    bool
			stuck     = make(chan struct{})
			stuckOnce sync.Once
		)
		handler := func(die bool) func(ctx context.Context, b client.Batch[client.Change[Item]]) error {
			return func(ctx context.Context, b client.Batch[client.Change[Item]]) error {
				ids := make([]int64, len(b.Changes))
				for i, ch := range b.Changes {
					ids[i] = ch.After.ID
				}
				if last := b.Changes[len(b.Changes)-1]; b.Progress.Last.ID() != last.ID {
					return fmt.Errorf("batch progress ends at %s, its last change is %s", b.Progress.Last.ID(), last.ID)
				}
				if b.Key != "shop.item" && b.Key != "dbsync.shop.item" {
					return fmt.Errorf("batch key %q", b.Key)
				}
				mu.Lock()
				sizes = append(sizes, len(ids))
				if !failed && len(ids) > 1 {
					failed, failedIDs = true, ids
					mu.Unlock()
					return errors.New("the database is down")
				}
				if failedIDs != nil && ids[0] == failedIDs[0] && fmt.Sprint(ids) != fmt.Sprint(failedIDs) {
					mu.Unlock()
					return fmt.Errorf("the failed batch came again as %v, was %v", ids, failedIDs)
				}
				mu.Unlock()
				store.commit(ids, b.Key, b.Progress)
				if die && len(store.ids()) >= rows/2 {
					// Stored, then the process dies before the SDK
					// acknowledges: block until the client closes.
					stuckOnce.Do(func() { close(stuck) })
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}
		}
		c1 := newClient(t, e, "c-batch", func(cfg *client.Config) { cfg.Dedup = store })
		if _, err := client.SubscribeBatch(c1, "shop", "item", client.BatchOptions{MaxChanges: maxChanges}, handler(true)); err != nil {
			t.Fatal(err)
		}
		var vals []string
		for i := 1; i <= rows; i++ {
			vals = append(vals, fmt.Sprintf("(%d, 'n%d')", i, i))
		}
		e.DB.Exec(t, "INSERT INTO shop.item VALUES "+strings.Join(vals[:rows/2], ","))
		e.DB.Exec(t, "INSERT INTO shop.item VALUES "+strings.Join(vals[rows/2:], ","))
		select {
		case <-stuck:
		case <-time.After(60 * time.Second):
			t.Fatalf("stored %d changes, want %d within 60s", len(store.ids()), rows/2)
		}
		_ = c1.Close()
		c2 := newClient(t, e, "c-batch", func(cfg *client.Config) { cfg.Dedup = store })
		if _, err := client.SubscribeBatch(c2, "shop", "item", client.BatchOptions{MaxChanges: maxChanges}, handler(false)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for len(store.ids()) < rows && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // a duplicate would show now
		got := store.ids()
		if len(got) != rows {
			t.Fatalf("stored %d changes, want %d exactly once", len(got), rows)
		}
		for i, id := range got {
			if id != int64(i+1) {
				t.Fatalf("change %d is id %d, want %d (in order, each once)", i, id, i+1)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		several, largest := 0, 0
		for _, n := range sizes {
			largest = max(largest, n)
			if n > 1 {
				several++
			}
		}
		if !failed || several == 0 || largest > maxChanges {
			t.Fatalf("batch sizes %v: want batches of several changes, none above %d, and the failed one again", sizes, maxChanges)
		}
		t.Logf("%s: %d batches, largest %d", broker, len(sizes), largest)
	})
}

// TestBatchEnvelopesAndPoison: SubscribeEnvelopeBatch hands raw envelopes
// over; a message that cannot be decoded between good changes is
// dead-lettered after the changes before it were handed over, and the rest
// follow in order.
func TestBatchEnvelopesAndPoison(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t, "stan")
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))",
		"INSERT INTO shop.item VALUES (1, 'a'), (2, 'b')")
	e.WaitFor("shop.item", 2, 30*time.Second)
	if err := e.Stan.Conn(t, "injector").Publish("shop.item", []byte("\x00garbage")); err != nil {
		t.Fatal(err)
	}
	e.DB.Exec(t, "INSERT INTO shop.item VALUES (3, 'c'), (4, 'd')")
	e.WaitFor("shop.item", 5, 30*time.Second)
	var mu sync.Mutex
	var got []string
	var dead []*client.PoisonError
	c := newClient(t, e, "c-envbatch", func(cfg *client.Config) {
		cfg.OnPoison = client.PoisonDeadLetter
		cfg.DeadLetter = func(_ context.Context, p *client.PoisonError) error {
			mu.Lock()
			defer mu.Unlock()
			dead = append(dead, p)
			got = append(got, "poison")
			return nil
		}
	})
	if _, err := c.SubscribeEnvelopeBatch("shop", "item", client.BatchOptions{}, func(_ context.Context, b client.Batch[*envelope.Envelope]) error {
		mu.Lock()
		defer mu.Unlock()
		for _, env := range b.Changes {
			got = append(got, string(env.After["id"]))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "1,2,poison,3,4" || len(dead) != 1 || !strings.Contains(dead[0].Error(), "invalid character") {
		t.Fatalf("handed over %v, dead-lettered %v; want 1,2,poison,3,4", got, dead)
	}
}
