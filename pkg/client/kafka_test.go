package client_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/test/e2e"
)

// TestKafkaGroupRebalance: two SDK consumers in one queue group (one Kafka
// consumer group) share a table; under a stream of changes the member
// holding the partition leaves (Close) three times, each time the other
// takes over at the committed offset and a new member joins. Every change
// is handed over exactly once across the members, in order.
func TestKafkaGroupRebalance(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t, e2e.Kafka)
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
	var mu sync.Mutex
	var handed []int64
	members := map[string]*client.Client{}
	join := func(name string) {
		c := newClient(t, e, name, func(cfg *client.Config) { cfg.QueueGroup = "workers"; cfg.StartAt = client.StartAtFirst })
		if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
			mu.Lock()
			handed = append(handed, ch.After.ID)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		members[name] = c
	}
	join("worker-0")
	join("worker-1")
	const n = 600
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			e.DB.Exec(t, "INSERT INTO shop.item VALUES ("+strconv.Itoa(i)+", 'x')")
		}
	}()
	for k := 0; k < 3; k++ {
		time.Sleep(700 * time.Millisecond)
		// Close the member that handed over the newest change: it holds
		// the partition.
		for name, c := range members {
			_ = c.Close()
			delete(members, name)
			join("worker-" + strconv.Itoa(2+k))
			break
		}
	}
	<-done
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		got := len(handed)
		mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(handed) != n {
		t.Fatalf("the group handed over %d changes, want %d exactly once", len(handed), n)
	}
	for i, id := range handed {
		if id != int64(i+1) {
			t.Fatalf("change %d handed over is id %d, want %d (in order, each once)", i, id, i+1)
		}
	}
}
