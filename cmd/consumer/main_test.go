package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestPrintsJSONLines: the consumer prints every change of the named tables,
// one envelope per line, in order, and nothing of other tables.
func TestPrintsJSONLines(t *testing.T) {
	srv := testenv.StartStan(t)
	sc := srv.Conn(t, "")
	msgs := []string{
		`{"v":1,"id":"f.000001:100:0","source":{"name":"x","server_id":1,"file":"f.000001","pos":100,"row":0,"ts":"2026-11-21T19:00:00Z"},"db":"shop","table":"orders","type":"insert","pk":["id"],"after":{"id":1}}`,
		`{"v":1,"id":"f.000001:200:0","source":{"name":"x","server_id":1,"file":"f.000001","pos":200,"row":0,"ts":"2026-11-21T19:00:01Z"},"db":"shop","table":"orders","type":"delete","pk":["id"],"before":{"id":1}}`,
	}
	for _, m := range msgs {
		if err := sc.Publish("shop.orders", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Publish("shop.other", []byte(msgs[0])); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"-url", srv.URL(), "-cluster", srv.ClusterID, "shop.orders"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(stdout.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("printed %d lines, want 2:\n%s\nstderr: %s", len(lines), stdout.String(), stderr.String())
	}
	for i, l := range lines {
		if !json.Valid([]byte(l)) || l != msgs[i] {
			t.Errorf("line %d = %s, want %s", i, l, msgs[i])
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"noDot"}, {"-from", "sometime", "a.b"}} {
		var out, errOut testenv.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("args %v: exit %d, want 2", args, code)
		}
	}
}

// TestPrintsKafkaRecords: with -broker kafka the consumer prints the
// records of the named tables' topics (written by the producer's Kafka
// queue, mq.Kafka), one envelope per line, in order.
func TestPrintsKafkaRecords(t *testing.T) {
	k := testenv.StartKafka(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := mq.NewKafka(ctx, mq.KafkaOptions{Brokers: k.Brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	msgs := []string{
		`{"v":1,"id":"f.000001:100:0","source":{"name":"x","server_id":1,"file":"f.000001","pos":100,"row":0,"ts":"2026-11-21T19:00:00Z"},"db":"shop","table":"order_lines","type":"insert","pk":["id"],"after":{"id":1}}`,
		`{"v":1,"id":"f.000001:200:0","source":{"name":"x","server_id":1,"file":"f.000001","pos":200,"row":0,"ts":"2026-11-21T19:00:01Z"},"db":"shop","table":"order_lines","type":"delete","pk":["id"],"before":{"id":1}}`,
	}
	batch := []mq.Message{{Subject: "dbsync.shop.order_lines", ID: "f.000001:100:0", Data: []byte(msgs[0])}, {Subject: "dbsync.shop.order_lines", ID: "f.000001:200:0", Data: []byte(msgs[1])}}
	if err := q.Publish(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr testenv.Buffer
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(runCtx, []string{"-broker", "kafka", "-brokers", strings.Join(k.Brokers, ","), "shop.order_lines"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(stdout.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); got != msgs[0]+"\n"+msgs[1] {
		t.Fatalf("printed:\n%s\nwant the two envelopes in order; stderr: %s", got, stderr.String())
	}
}
