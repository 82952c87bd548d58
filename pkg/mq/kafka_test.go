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

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

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
	// One that wants a retention of an hour is told the topic has another.
	log, hook := logtest.NewNullLogger()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	qr, err := mq.NewKafka(ctx2, mq.KafkaOptions{Brokers: k.Brokers, Retention: time.Hour}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer qr.Close()
	if err := qr.Publish(ctx, []mq.Message{{Subject: subject, ID: "y", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, e := range hook.AllEntries() {
		warned = warned || strings.Contains(e.Message, "another retention than Kafka.Retention")
	}
	if !warned {
		t.Error("no warning about the existing topic's retention")
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

// TestInspectKafka: against a cluster with SASL and ACLs, a principal that
// may only describe the dbsync topics is told everything it lacks (the
// idempotent producer, creating topics, writing), and a topic with another
// partition count is reported; the superuser gets no problem but that
// topic's; a wrong password is refused naming the user, never the
// password.
func TestInspectKafka(t *testing.T) {
	k := testenv.StartKafka(t, 1, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("SCRAM-SHA-256", "admin", "admin-secret"),
		kfake.User("SCRAM-SHA-256", "reader", "reader-secret",
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "dbsync.", Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: kmsg.ACLOperationDescribe, Allow: true},
			kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := mq.KafkaOptions{Brokers: k.Brokers, SASL: mq.KafkaSASL{Mechanism: "SCRAM-SHA-256", User: "admin", Password: "admin-secret"}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, -1, nil, "dbsync.shop.orders"); err != nil {
		t.Fatal(err)
	}
	r, err := mq.InspectKafka(ctx, admin, "dbsync.")
	if err != nil {
		t.Fatal(err)
	}
	if r.Brokers != 1 || r.Topics["dbsync.shop.orders"] != 2 || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "has 2 partitions, Kafka.Partitions says 1") {
		t.Fatalf("superuser: %+v", r)
	}
	reader := mq.KafkaOptions{Brokers: k.Brokers, Partitions: 2, SASL: mq.KafkaSASL{Mechanism: "SCRAM-SHA-256", User: "reader", Password: "reader-secret"}}
	r, err = mq.InspectKafka(ctx, reader, "dbsync.")
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(r.Problems, "\n")
	for _, want := range []string{"IDEMPOTENT_WRITE", "may not create topics", "may not write topic dbsync.shop.orders: grant it WRITE"} {
		if !strings.Contains(all, want) {
			t.Errorf("the describe-only principal's problems lack %q:\n%s", want, all)
		}
	}
	bad := reader
	bad.SASL.Password = "wrong-password-123"
	_, err = mq.InspectKafka(ctx, bad, "dbsync.")
	if err == nil || !strings.Contains(err.Error(), `"reader"`) || strings.Contains(err.Error(), "wrong-password-123") {
		t.Fatalf("wrong password: %v", err)
	}
}
