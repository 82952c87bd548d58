package producer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
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
		if key != "["+string(env.After["id"])+"]" { // the key does not change here
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
	// The operations endpoints cover Kafka like the other brokers.
	if got := scrape(t, e.HTTPAddr, "dbsync_broker_connected"); got != 1 {
		t.Errorf("dbsync_broker_connected = %v with Kafka, want 1", got)
	}
	if code, body := readyz(t, e.HTTPAddr); code != 200 {
		t.Errorf("/readyz with Kafka: %d %s", code, body)
	}
	if code := p.Stop(); code != 0 {
		t.Fatalf("producer exit %d:\n%s", code, p.Output())
	}
	t.Logf("%d changes of %d rows over %d partitions: each row in one partition, in order; the SDK handed each over once (%s)", want, rows, len(used), strconv.Itoa(len(recs)))
}

// TestKafkaOversizedRow: the brokers take records up to 64 KiB; a 100 KB
// row of shop.docs is found before it is sent. With the default policy the
// producer stops naming the table and the fix, having published nothing
// after it; with Tables.OnUnpublishable skip for shop.docs a marker on the
// dead-letter topic names it and every other change arrives.
func TestKafkaOversizedRow(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"stop", "skip"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			e := e2e.NewEnvBroker(t, producerBin, e2e.Kafka)
			e.Kafka = testenv.StartKafka(t, 1, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "65536"}))
			e.Set("Kafka", map[string]any{"Brokers": e.Kafka.Brokers})
			e.Set("Tables.OnUnpublishable", map[string]any{"shop.docs": policy})
			e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.docs (id INT PRIMARY KEY, body LONGTEXT)", "CREATE TABLE shop.item (id INT PRIMARY KEY)")
			p := e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			e.DB.Exec(t, "INSERT INTO shop.item VALUES (1)", "INSERT INTO shop.docs VALUES (1, 'small')",
				"INSERT INTO shop.docs VALUES (2, REPEAT('x', 100000))", "INSERT INTO shop.item VALUES (2)", "INSERT INTO shop.docs VALUES (3, 'small')")
			if policy == "stop" {
				select {
				case <-p.Done():
				case <-time.After(30 * time.Second):
					t.Fatalf("the producer did not stop:\n%s", tailLines(p.Output(), 30))
				}
				if code := p.Wait(time.Second); code != 1 {
					t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
				}
				for _, want := range []string{"shop.docs", "cannot be published", "Tables.OnUnpublishable"} {
					if !strings.Contains(p.Output(), want) {
						t.Errorf("the producer's error lacks %q:\n%s", want, tailLines(p.Output(), 10))
					}
				}
				// Nothing after the oversized row is published (what came
				// before it in its batch may wait for the restart).
				for subject, allowed := range map[string]int64{"shop.docs": 1, "shop.item": 1} {
					for _, env := range e.Read(subject) {
						if id := e2e.IntField(t, env.After, "id"); id > allowed {
							t.Errorf("%s row %d, after the oversized row, was published", subject, id)
						}
					}
				}
				return
			}
			e.WaitFor("shop.item", 2, 30*time.Second)
			e.WaitFor("shop.docs", 2, 30*time.Second)
			e.WaitFor("_dbsync.deadletter", 1, 30*time.Second)
			marker := string(e.RawMessages("_dbsync.deadletter")[0])
			if !strings.Contains(marker, `"table":"docs"`) || !strings.Contains(marker, "larger than Kafka topic dbsync.shop.docs accepts") {
				t.Errorf("dead-letter marker: %s", marker)
			}
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
		})
	}
}
