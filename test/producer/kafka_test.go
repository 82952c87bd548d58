package producer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/test/e2e"
)

// TestKafkaKeyedByPrimaryKey: with Kafka.Partitions 3 and Key primary_key,
// 20 rows changed 31 times each (an insert, then 30 updates of all of
// them, one transaction each) land in several partitions, each row's
// changes in one partition and in order; an SDK consumer hands over every
// change once, each row's in order.
func TestKafkaKeyedByPrimaryKey(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvBroker(t, producerBin, e2e.Kafka)
	e.Set("Kafka", map[string]any{"Brokers": e.Kafka.Brokers, "Partitions": 3, "Key": "primary_key"})
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.acct (id INT PRIMARY KEY, n INT)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")

	var mu sync.Mutex
	handed := map[int64][]int64{} // id -> n values handed over
	cl, err := client.NewClient(client.Config{Broker: client.BrokerKafka, Brokers: e.Kafka.Brokers, ClientID: "keyed", RetryMin: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const rows, rounds = 20, 30
	stmts := []string{}
	for i := 1; i <= rows; i++ {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO shop.acct VALUES (%d, 0)", i))
	}
	e.DB.Exec(t, stmts...)
	// The topic exists once the first change is published; subscribe then,
	// from its first record, so the consumer knows its partitions.
	e.WaitFor("shop.acct", rows, 30*time.Second)
	if _, err := cl.SubscribeEnvelope("shop", "acct", func(_ context.Context, env *envelope.Envelope, _ []byte) error {
		var id, n int64
		if err := json.Unmarshal(env.After["id"], &id); err != nil {
			return err
		}
		if err := json.Unmarshal(env.After["n"], &n); err != nil {
			return err
		}
		mu.Lock()
		handed[id] = append(handed[id], n)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for r := 0; r < rounds; r++ {
		e.DB.Exec(t, "UPDATE shop.acct SET n = n + 1")
	}
	want := rows * (rounds + 1)
	e.WaitFor("shop.acct", want, time.Minute)
	recs := e.Kafka.ReadTopic(t, mq.KafkaTopic("dbsync.shop.acct"))
	partitionOf := map[string]int32{}
	last := map[string]int64{}
	used := map[int32]bool{}
	for _, r := range recs {
		env, err := envelope.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		key := string(r.Key)
		if key != "["+string(env.After["id"])+"]" {
			t.Fatalf("record %s has key %q, want the primary key [%s]", env.ID, key, env.After["id"])
		}
		if p, seen := partitionOf[key]; seen && p != r.Partition {
			t.Fatalf("row %s is in partitions %d and %d", key, p, r.Partition)
		}
		partitionOf[key], used[r.Partition] = r.Partition, true
		var n int64
		_ = json.Unmarshal(env.After["n"], &n)
		if prev, seen := last[key]; seen && n != prev+1 {
			t.Fatalf("row %s: n %d after %d in its partition, want %d (order lost)", key, n, prev, prev+1)
		}
		last[key] = n
	}
	if len(recs) != want || len(used) < 2 {
		t.Fatalf("%d records over %d partitions, want %d over several", len(recs), len(used), want)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		total := 0
		for _, ns := range handed {
			total += len(ns)
		}
		mu.Unlock()
		if total >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for id := int64(1); id <= rows; id++ {
		ns := handed[id]
		if len(ns) != rounds+1 {
			t.Fatalf("row %d: the SDK handed over %d changes, want %d once each: %v", id, len(ns), rounds+1, ns)
		}
		for i, n := range ns {
			if n != int64(i) {
				t.Fatalf("row %d: change %d handed over has n=%d, want %d: %v", id, i, n, i, ns)
			}
		}
	}
	if code := p.Stop(); code != 0 {
		t.Fatalf("producer exit %d:\n%s", code, p.Output())
	}
	t.Logf("%d changes of %d rows over %d partitions: each row in one partition, in order; the SDK handed each over once (%s)", want, rows, len(used), strconv.Itoa(len(recs)))
}
