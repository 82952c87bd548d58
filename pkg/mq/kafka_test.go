package mq_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/mq/mqtest"
	"github.com/dbsync/dbsync/test/testenv"
)

func newKafka(t *testing.T, brokers []string, opts mq.KafkaOptions) *mq.Kafka {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts.Brokers = brokers
	q, err := mq.NewKafka(ctx, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestKafkaKeepsTheContract(t *testing.T) {
	k := testenv.StartKafka(t, 1)
	mqtest.Run(t, func(t *testing.T) mqtest.Broker {
		// One topic prefix per check: they share the cluster.
		prefix := "c" + strconv.FormatInt(contractClients.Add(1), 10)
		q := newKafka(t, k.Brokers, mq.KafkaOptions{ClientID: "contract-" + prefix})
		return mqtest.Broker{
			Queue:   q,
			Subject: func(name string) string { return prefix + ".db." + name },
			Stored: func(t *testing.T, subject string) [][]byte {
				var out [][]byte
				for _, r := range k.ReadTopic(t, mq.KafkaTopic(subject)) {
					out = append(out, r.Value)
				}
				return out
			},
		}
	})
}

// TestKafkaTopics: topics are created with the configured partitions and
// named by the documented mapping; each record carries its envelope id; an
// existing topic with other settings is reported, not changed.
func TestKafkaTopics(t *testing.T) {
	k := testenv.StartKafka(t, 1)
	q := newKafka(t, k.Brokers, mq.KafkaOptions{})
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subject := "dbsync.shop.order_items-ü"
	if err := q.Publish(ctx, []mq.Message{{Subject: subject, ID: "mysql-bin.000001:4:0", Data: []byte(`{"x":1}`)}}); err != nil {
		t.Fatal(err)
	}
	topic := mq.KafkaTopic(subject)
	if topic != "dbsync.shop.order__items-_c3_bc" {
		t.Fatalf("topic of %q: %q", subject, topic)
	}
	recs := k.ReadTopic(t, topic)
	if len(recs) != 1 || len(recs[0].Headers) != 1 || recs[0].Headers[0].Key != mq.KafkaIDHeader || string(recs[0].Headers[0].Value) != "mysql-bin.000001:4:0" {
		t.Fatalf("records %+v: want one with the id header", recs)
	}
	// A second queue that wants three partitions finds the topic with one.
	q3 := newKafka(t, k.Brokers, mq.KafkaOptions{Partitions: 3})
	defer q3.Close()
	err := q3.Publish(ctx, []mq.Message{{Subject: subject, ID: "x", Data: []byte(`{}`)}})
	if err == nil || !strings.Contains(err.Error(), "has 1 partitions, Kafka.Partitions says 3") {
		t.Fatalf("publish to a topic with other partitions: %v", err)
	}
	if err := mq.CheckKafkaTopic(strings.Repeat("a", 250)); err == nil {
		t.Fatal("a 250-character topic name was accepted")
	}
}

// TestKafkaRefusesAnOversizedRecord: the brokers take 4 KiB; a bigger
// message is found before it is sent (CheckSize), and a topic that takes
// less than the brokers (max.message.bytes 2 KiB) refuses a 3 KB record
// with mq.ErrTooLarge while the queue stays usable.
func TestKafkaRefusesAnOversizedRecord(t *testing.T) {
	k := testenv.StartKafka(t, 1, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4096"}))
	q := newKafka(t, k.Brokers, mq.KafkaOptions{})
	defer q.Close()
	// Random text: the producer compresses batches, and the brokers
	// measure what arrives.
	noise := make([]byte, 6000)
	rand.Read(noise)
	big := mq.Message{Subject: "dbsync.db.big", ID: "b-1", Data: []byte(`"` + base64.StdEncoding.EncodeToString(noise) + `"`)}
	if err := q.CheckSize(&big); !errors.Is(err, mq.ErrTooLarge) {
		t.Fatalf("CheckSize of 8 KB against 4 KiB: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	limit := "2048"
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &limit}, mq.KafkaTopic("dbsync.db.big")); err != nil {
		t.Fatal(err)
	}
	big.Data = big.Data[:3000]
	err = q.Publish(ctx, []mq.Message{big})
	var perr *mq.PublishError
	if !errors.Is(err, mq.ErrTooLarge) || !errors.As(err, &perr) || perr.ID != "b-1" {
		t.Fatalf("Publish of 8 KB: %v, want mq.ErrTooLarge naming b-1", err)
	}
	small := []mq.Message{{Subject: "dbsync.db.big", ID: "s-1", Data: []byte(`{}`)}}
	if err := q.Publish(ctx, small); err != nil {
		t.Fatalf("Publish after the refusal: %v", err)
	}
	if recs := k.ReadTopic(t, mq.KafkaTopic("dbsync.db.big")); len(recs) != 1 {
		t.Fatalf("%d records stored, want only the small one", len(recs))
	}
}
