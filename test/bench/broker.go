package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/test/testenv"
)

// Broker names: NATS Streaming, and NATS with JetStream either as a
// server of its own (a separate process, as in production) or embedded in
// the producer (its default set-up: no JetStream.URL).
const (
	BrokerStan              = "stan"
	BrokerJetStream         = "jetstream"
	BrokerJetStreamEmbedded = "jetstream-embedded"
	// BrokerKafka is franz-go's in-process Kafka cluster (kfake) in the
	// bench's process, or the cluster DBSYNC_TEST_KAFKA names.
	BrokerKafka = "kafka"
)

// Brokers lists every broker name, in report order.
var Brokers = []string{BrokerStan, BrokerJetStream, BrokerJetStreamEmbedded, BrokerKafka}

// JetStream settings of the producer's defaults: the stream and the subject
// prefix (ProName).
const (
	jsStream = "DBSYNC"
	jsPrefix = "dbsync."
)

// broker is a fresh broker, stopped with its scope: NATS Streaming started
// in this process by testenv; a NATS server with JetStream in a process of
// its own; or the NATS server the producer embeds (it runs while the
// producer does).
type broker struct {
	Name string
	stan *testenv.Stan
	// url is the NATS server's; embedded is set when the producer runs it
	// (listening on listen).
	url      string
	embedded bool
	listen   string
	// kafka is set for BrokerKafka.
	kafka *testenv.Kafka
	tb    *benchTB

	// mu guards the connection used for counting and subscribing.
	mu sync.Mutex
	nc *nats.Conn
	js jetstream.JetStream
}

// startBroker starts a fresh broker of the given kind in tb's scope (for
// the embedded one, only picks its address: the producer starts it).
func startBroker(tb *benchTB, name string) (*broker, error) {
	b := &broker{Name: name, tb: tb}
	switch name {
	case BrokerStan:
		b.stan = testenv.StartStan(tb)
	case BrokerJetStream:
		url, err := startNATSProcess(tb)
		if err != nil {
			return nil, err
		}
		b.url = url
	case BrokerJetStreamEmbedded:
		b.embedded = true
		b.listen = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(tb))
		b.url = "nats://" + b.listen
	case BrokerKafka:
		b.kafka = testenv.StartKafka(tb, 1)
	default:
		return nil, fmt.Errorf("unknown broker %q: want one of %v", name, Brokers)
	}
	return b, nil
}

// startSinkBroker is startBroker for the sink ceiling, whose publisher runs
// in this process: the embedded broker is then a NATS server in this
// process too, as it is in the producer's.
func startSinkBroker(tb *benchTB, name string) (*broker, error) {
	if name != BrokerJetStreamEmbedded {
		return startBroker(tb, name)
	}
	return &broker{Name: name, tb: tb, url: testenv.StartNATS(tb).URL()}, nil
}

// startNATSProcess runs a NATS server with JetStream (the project's
// natsembed, as test/faults/cmd/natsbroker) in a process of its own,
// killed at tb's close, and returns its URL once it accepts connections.
func startNATSProcess(tb *benchTB) (string, error) {
	bin, err := tb.root.natsBroker()
	if err != nil {
		return "", err
	}
	port := testenv.FreePort(tb)
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port), "-dir", tb.TempDir())
	out := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	child, err := testenv.StartChild(cmd)
	if err != nil {
		return "", fmt.Errorf("start the NATS server process: %w", err)
	}
	tb.Cleanup(child.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "natsbroker ready") {
		if child.Exited() || time.Now().After(deadline) {
			return "", fmt.Errorf("the NATS server process did not start (%s):\n%s", child.ExitStatus(), out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "nats://127.0.0.1:" + strconv.Itoa(port), nil
}

// URL returns the broker's nats:// URL.
func (b *broker) URL() string {
	if b.stan != nil {
		return b.stan.URL()
	}
	return b.url
}

// subject returns the subject the producer publishes rows of db.table to:
// "db.table" with NATS Streaming (ProName ""), "dbsync.db.table" with
// JetStream (its default ProName).
func (b *broker) subject(fullTable string) string {
	if b.stan != nil {
		return fullTable
	}
	return jsPrefix + fullTable
}

// producerConfig returns the producer's MQName and broker section for this
// broker.
func (b *broker) producerConfig() map[string]any {
	switch {
	case b.kafka != nil:
		return map[string]any{"MQName": "kafka", "Kafka": map[string]any{"Brokers": b.kafka.Brokers}}
	case b.stan != nil:
		return map[string]any{
			"MQName": "stan",
			"Stan": map[string]any{"Host": "nats://" + b.stan.Host, "Port": strconv.Itoa(b.stan.Port),
				"ClusterID": b.stan.ClusterID, "ClientID": "dbsync-bench"},
		}
	case b.embedded:
		return map[string]any{
			"MQName":    "jetstream",
			"JetStream": map[string]any{"Listen": b.listen, "Stream": jsStream},
		}
	}
	return map[string]any{
		"MQName":    "jetstream",
		"JetStream": map[string]any{"URL": b.url, "Stream": jsStream},
	}
}

// publisher connects the project's publisher for this broker, with the
// producer's default settings (JetStream: stream DBSYNC capturing
// "dbsync.*.*", file storage).
func (b *broker) publisher(ctx context.Context) (mq.MessageQueue, error) {
	if b.kafka != nil {
		q, err := mq.NewKafka(ctx, mq.KafkaOptions{Brokers: b.kafka.Brokers}, nil)
		if err != nil {
			return nil, fmt.Errorf("connect the Kafka publisher: %w", err)
		}
		return q, nil
	}
	if b.stan != nil {
		q, err := mq.NewStan(mq.StanOptions{URL: b.stan.URL(), ClusterID: b.stan.ClusterID, ClientID: "bench-sink"}, nil)
		if err != nil {
			return nil, fmt.Errorf("connect the NATS Streaming publisher: %w", err)
		}
		return q, nil
	}
	q, err := mq.NewJetStream(ctx, mq.JetStreamOptions{URL: b.url, Stream: jsStream, Subjects: []string{jsPrefix + "*.*"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("connect the JetStream publisher: %w", err)
	}
	return q, nil
}

// count returns how many messages the broker stores on subject (0 while
// the channel or stream does not exist yet).
func (b *broker) count(ctx context.Context, subject string) (int, error) {
	if b.stan != nil {
		return b.stan.ChannelCount(b.tb, subject), nil
	}
	if b.kafka != nil {
		return b.kafka.Count(ctx, mq.KafkaTopic(subject))
	}
	js, err := b.jetStream()
	if err != nil {
		if b.embedded {
			return 0, nil // the producer has not started its server yet
		}
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, jsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("look up stream %s on %s: %w", jsStream, b.url, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("stream %s info on %s: %w", jsStream, b.url, err)
	}
	return int(info.State.Subjects[subject]), nil
}

// jetStream returns a JetStream handle on one connection kept for the
// scope, so that polling does not open a connection per call.
func (b *broker) jetStream() (jetstream.JetStream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.js != nil {
		return b.js, nil
	}
	nc, err := nats.Connect(b.url, nats.Timeout(time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", b.url, err)
	}
	b.tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream on %s: %w", b.url, err)
	}
	b.nc, b.js = nc, js
	return js, nil
}

// subscribe delivers every message published on subject from now on to fn,
// with the time it arrived, until the returned stop is called. NATS
// Streaming: a plain subscription (new messages only, auto-ack). JetStream:
// an ordered consumer on the stream (deliver new), so a message counts as
// delivered once the stream stored it and handed it to a consumer, as a
// dbsync consumer would see it. The stream must exist (the producer creates
// it when it starts).
func (b *broker) subscribe(ctx context.Context, subject string, fn func(data []byte, at time.Time)) (stop func(), err error) {
	if b.kafka != nil {
		return b.kafka.Subscribe(ctx, mq.KafkaTopic(subject), func(r *kgo.Record) { fn(r.Value, time.Now()) })
	}
	if b.stan != nil {
		sc := b.stan.Conn(b.tb, "")
		sub, err := sc.Subscribe(subject, func(m *stan.Msg) { fn(m.Data, time.Now()) }, stan.MaxInflight(4096))
		if err != nil {
			return nil, fmt.Errorf("subscribe to %s on %s: %w", subject, b.stan.URL(), err)
		}
		return sync.OnceFunc(func() { _ = sub.Unsubscribe() }), nil
	}
	js, err := b.jetStream()
	if err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, jsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s %s at %s: %w", jsStream, subject, b.url, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { fn(m.Data(), time.Now()) })
	if err != nil {
		return nil, fmt.Errorf("consume %s %s at %s: %w", jsStream, subject, b.url, err)
	}
	return sync.OnceFunc(cc.Stop), nil
}

// subscribeIngress delivers every message published on subject to fn as it
// reaches the server, before JetStream stored it, through a core NATS
// subscription: the latency up to the broker's door, to tell the
// producer's share from the stream's and the consumer's. ok is false for
// NATS Streaming, whose wire messages are not plain envelopes.
func (b *broker) subscribeIngress(subject string, fn func(data []byte, at time.Time)) (stop func(), ok bool, err error) {
	if b.stan != nil || b.kafka != nil {
		return func() {}, false, nil
	}
	if _, err := b.jetStream(); err != nil {
		return nil, false, err
	}
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Data, time.Now()) })
	if err != nil {
		return nil, false, fmt.Errorf("core NATS subscription to %s on %s: %w", subject, b.url, err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, false, fmt.Errorf("core NATS subscription to %s: %w", subject, err)
	}
	return sync.OnceFunc(func() { _ = sub.Unsubscribe() }), true, nil
}
