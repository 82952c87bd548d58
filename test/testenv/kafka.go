package testenv

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaEnv names a real Kafka cluster ("host:port,host:port") the Kafka
// tests use instead of the in-process one.
const KafkaEnv = "DBSYNC_TEST_KAFKA"

// Kafka is a Kafka cluster for a test: franz-go's in-process cluster
// (kfake) on loopback ports, or the real one KafkaEnv names.
type Kafka struct {
	Brokers []string
	fake    *kfake.Cluster
}

// StartKafka starts an in-process Kafka cluster of brokers brokers (kfake:
// the Kafka protocol, topics, consumer groups, idempotent producers),
// closed at test cleanup; with DBSYNC_TEST_KAFKA set, it returns that
// cluster instead (the tests then create topics of their own names there).
func StartKafka(t testing.TB, brokers int, opts ...kfake.Opt) *Kafka {
	t.Helper()
	if env := strings.TrimSpace(os.Getenv(KafkaEnv)); env != "" {
		return &Kafka{Brokers: strings.Split(env, ",")}
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(brokers)}, opts...)...)
	if err != nil {
		t.Fatalf("testenv: start the in-process Kafka cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return &Kafka{Brokers: c.ListenAddrs(), fake: c}
}

// ReadTopic returns the values and headers of every record topic holds,
// partition by partition in offset order (one partition: the order stored).
func (k *Kafka) ReadTopic(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("testenv: Kafka reader: %v", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("testenv: Kafka end offsets of %s: %v", topic, err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			want += o.Offset
		}
	})
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("testenv: read %s: %d of %d records within 30s", topic, len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// Count returns how many records topic holds (0 while it does not exist).
func (k *Kafka) Count(ctx context.Context, topic string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	n := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return int(n), nil
}

// Subscribe hands every record of topic written from now on to fn (in
// partition order) until the returned stop is called; it returns once the
// consumer's start offsets are taken.
func (k *Kafka) Subscribe(ctx context.Context, topic string, fn func(*kgo.Record)) (stop func(), err error) {
	ends := map[string]map[int32]kgo.Offset{topic: {}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...))
	if err != nil {
		return nil, err
	}
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		cl.Close()
		return nil, err
	}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			ends[topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		}
	})
	cl.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if len(ends[topic]) > 0 {
		opts = append(opts, kgo.ConsumePartitions(ends))
	} else {
		opts = append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	consumer, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	pollCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pollCtx.Err() == nil {
			fs := consumer.PollFetches(pollCtx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(fn)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			consumer.Close()
		})
	}, nil
}
