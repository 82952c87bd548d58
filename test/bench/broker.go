package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/test/testenv"
)

// Broker names, as in the producer's MQName.
const (
	BrokerStan      = "stan"
	BrokerJetStream = "jetstream"
)

// JetStream settings of the producer's defaults: the stream and the subject
// prefix (ProName).
const (
	jsStream = "DBSYNC"
	jsPrefix = "dbsync."
)

// broker is a fresh embedded broker (NATS Streaming or NATS with
// JetStream) started in this process by testenv, stopped with its scope.
type broker struct {
	Name string
	stan *testenv.Stan
	nats *testenv.NATS
	tb   *benchTB

	// mu guards the JetStream handle used for counting.
	mu sync.Mutex
	js jetstream.JetStream
}

// startBroker starts a fresh broker of the given kind in tb's scope.
func startBroker(tb *benchTB, name string) (*broker, error) {
	b := &broker{Name: name, tb: tb}
	switch name {
	case BrokerStan:
		b.stan = testenv.StartStan(tb)
	case BrokerJetStream:
		b.nats = testenv.StartNATS(tb)
	default:
		return nil, fmt.Errorf("unknown broker %q: want %s or %s", name, BrokerStan, BrokerJetStream)
	}
	return b, nil
}

// URL returns the broker's nats:// URL.
func (b *broker) URL() string {
	if b.stan != nil {
		return b.stan.URL()
	}
	return b.nats.URL()
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
	if b.stan != nil {
		return map[string]any{
			"MQName": "stan",
			"Stan": map[string]any{"Host": "nats://" + b.stan.Host, "Port": strconv.Itoa(b.stan.Port),
				"ClusterID": b.stan.ClusterID, "ClientID": "dbsync-bench"},
		}
	}
	return map[string]any{
		"MQName":    "jetstream",
		"JetStream": map[string]any{"URL": b.nats.URL(), "Stream": jsStream},
	}
}

// publisher connects the project's publisher for this broker, with the
// producer's default settings (JetStream: stream DBSYNC capturing
// "dbsync.*.*", file storage).
func (b *broker) publisher(ctx context.Context) (mq.MessageQueue, error) {
	if b.stan != nil {
		q, err := mq.NewStan(mq.StanOptions{URL: b.stan.URL(), ClusterID: b.stan.ClusterID, ClientID: "bench-sink"}, nil)
		if err != nil {
			return nil, fmt.Errorf("connect the NATS Streaming publisher: %w", err)
		}
		return q, nil
	}
	q, err := mq.NewJetStream(ctx, mq.JetStreamOptions{URL: b.nats.URL(), Stream: jsStream, Subjects: []string{jsPrefix + "*.*"}}, nil)
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
	js, err := b.jetStream()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, jsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("look up stream %s on %s: %w", jsStream, b.nats.URL(), err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("stream %s info on %s: %w", jsStream, b.nats.URL(), err)
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
	js, err := jetstream.New(b.nats.Conn(b.tb))
	if err != nil {
		return nil, fmt.Errorf("jetstream on %s: %w", b.nats.URL(), err)
	}
	b.js = js
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
	if b.stan != nil {
		sc := b.stan.Conn(b.tb, "")
		sub, err := sc.Subscribe(subject, func(m *stan.Msg) { fn(m.Data, time.Now()) }, stan.MaxInflight(4096))
		if err != nil {
			return nil, fmt.Errorf("subscribe to %s on %s: %w", subject, b.stan.URL(), err)
		}
		return sync.OnceFunc(func() { _ = sub.Unsubscribe() }), nil
	}
	js, err := jetstream.New(b.nats.Conn(b.tb))
	if err != nil {
		return nil, fmt.Errorf("jetstream on %s: %w", b.nats.URL(), err)
	}
	cons, err := js.OrderedConsumer(ctx, jsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s %s at %s: %w", jsStream, subject, b.nats.URL(), err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { fn(m.Data(), time.Now()) })
	if err != nil {
		return nil, fmt.Errorf("consume %s %s at %s: %w", jsStream, subject, b.nats.URL(), err)
	}
	return sync.OnceFunc(cc.Stop), nil
}

// subscribeIngress delivers every message published on subject to fn as it
// reaches the server, before JetStream stored it, through a core NATS
// subscription: the latency up to the broker's door, to tell the
// producer's share from the stream's and the consumer's. ok is false for
// NATS Streaming, whose wire messages are not plain envelopes.
func (b *broker) subscribeIngress(subject string, fn func(data []byte, at time.Time)) (stop func(), ok bool, err error) {
	if b.nats == nil {
		return func() {}, false, nil
	}
	sub, err := b.nats.Conn(b.tb).Subscribe(subject, func(m *nats.Msg) { fn(m.Data, time.Now()) })
	if err != nil {
		return nil, false, fmt.Errorf("core NATS subscription to %s on %s: %w", subject, b.nats.URL(), err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, false, fmt.Errorf("core NATS subscription to %s: %w", subject, err)
	}
	return sync.OnceFunc(func() { _ = sub.Unsubscribe() }), true, nil
}
