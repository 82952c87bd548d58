package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/dbsync/dbsync/pkg/mq"
)

// kafkaTransport consumes from Kafka: each subscription is a member of the
// consumer group "<ClientID or QueueGroup>.<topic>" that hands its records
// over one at a time and commits a record's offset once it is done.
type kafkaTransport struct {
	opts kafkaOptions
	log  logrus.FieldLogger
	// producer publishes to the dead letter.
	producer *kgo.Client
}

// kafkaOptions say how to reach Kafka.
type kafkaOptions struct {
	Brokers  []string
	ClientID string
	TLS      *tls.Config
	// SASLMechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512",
	// with User and Password.
	SASLMechanism, User, Password string
}

// base are the options every client of the transport gets.
func (o kafkaOptions) base() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(o.Brokers...), kgo.ClientID(o.ClientID)}
	if o.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(o.TLS))
	}
	switch o.SASLMechanism {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: o.User, Pass: o.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: o.User, Pass: o.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: o.User, Pass: o.Password}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("client.Config.SASLMechanism %q is not one of %s", o.SASLMechanism, strings.Join(mq.KafkaMechanisms(), ", "))
	}
	return opts, nil
}

// dialKafka checks that the brokers answer and opens the dead letter's
// producer.
func dialKafka(ctx context.Context, opts kafkaOptions, log logrus.FieldLogger) (*kafkaTransport, error) {
	base, err := opts.base()
	if err != nil {
		return nil, err
	}
	producer, err := kgo.NewClient(append(base, kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return nil, fmt.Errorf("Kafka client for %s: %w", strings.Join(opts.Brokers, ","), err)
	}
	if err := producer.Ping(ctx); err != nil {
		producer.Close()
		if errors.Is(err, kerr.SaslAuthenticationFailed) {
			return nil, fmt.Errorf("connect to Kafka at %s: the brokers refused the login of %q: %w", strings.Join(opts.Brokers, ","), opts.User, ErrUnauthorized)
		}
		return nil, fmt.Errorf("connect to Kafka at %s: %w (check client.Config.Brokers)", strings.Join(opts.Brokers, ","), err)
	}
	log.WithFields(logrus.Fields{"brokers": strings.Join(opts.Brokers, ",")}).Info("consumer connected to Kafka")
	return &kafkaTransport{opts: opts, log: log, producer: producer}, nil
}

// kafkaGroup is the consumer group of a subscription to topic.
func kafkaGroup(opts subOptions, clientID, topic string) string {
	base := clientID
	if opts.queueGroup != "" {
		base = opts.queueGroup
	}
	return base + "." + topic
}

func (t *kafkaTransport) subscribe(subject string, opts subOptions, handle func([]delivery)) (unsubscriber, error) {
	topic := mq.KafkaTopic(subject)
	// Without committed offsets (startAtEnd commits the end for a new
	// group that starts at new changes) a group starts at the topic's
	// first record.
	start := kgo.NewOffset().AtStart()
	base, err := t.opts.base()
	if err != nil {
		return nil, err
	}
	group := kafkaGroup(opts, t.opts.ClientID, topic)
	if !opts.fromStart {
		if err := t.startAtEnd(group, topic); err != nil {
			return nil, err
		}
	}
	cl, err := kgo.NewClient(append(base,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		// A rebalance waits until the records in hand are handed over
		// and committed: no other member gets them meanwhile.
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("subscribe to Kafka topic %s: %w", topic, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &kafkaSub{cl: cl, ctx: ctx, cancel: cancel, done: make(chan struct{}), log: t.log.WithField("topic", topic), partitions: t.partitions(topic),
		window: max(opts.window, 1)}
	go s.loop(handle)
	return s, nil
}

// startAtEnd gives a group that has no committed offsets on topic yet the
// topic's end offsets, so that a new subscription starting at new changes
// starts at those of the moment it subscribed (the group's first member
// joins later, and the end then may have moved on).
func (t *kafkaTransport) startAtEnd(group, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	adm := kadm.NewClient(t.producer)
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		if _, ok := committed[topic]; ok {
			return nil // an existing durable subscription resumes
		}
	} else if !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("read the committed offsets of Kafka group %s: %w", group, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("read the end offsets of Kafka topic %s: %w", topic, err)
	}
	offsets := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			offsets.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
		}
	})
	if len(offsets) == 0 {
		return nil // no topic yet: the group starts at its beginning, which is now
	}
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("start Kafka group %s at the end of %s: %w", group, topic, err)
	}
	return nil
}

// partitions is topic's partition count, 0 when it cannot be read.
func (t *kafkaTransport) partitions(topic string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	details, err := kadm.NewClient(t.producer).ListTopics(ctx, topic)
	if err != nil {
		return 0
	}
	return len(details[topic].Partitions)
}

// kafkaSub is one subscription's consumer-group member.
type kafkaSub struct {
	cl     *kgo.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	log    logrus.FieldLogger
	once   sync.Once
	// partitions is the topic's partition count when it subscribed (0
	// when unknown: the topic did not exist yet).
	partitions int
	// window is how many records one run may hold.
	window int
}

// loop hands the records over in runs of up to window records of one
// partition, in offset order; a run left unacknowledged (the subscription
// stopped or closed) ends it, so no later offset is committed past it.
func (s *kafkaSub) loop(handle func([]delivery)) {
	defer close(s.done)
	for {
		fs := s.cl.PollRecords(s.ctx, s.window)
		if fs.IsClientClosed() || s.ctx.Err() != nil {
			s.cl.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.log.WithError(err).WithField("partition", partition).Warn("Kafka fetch failed; retrying")
			}
		})
		// Every partition's run of the poll is handed over, also after
		// one lost the group: the member still holds its partitions until
		// it allows the rebalance, and a run skipped here would not come
		// again from the client's cursor.
		stopped := false
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if stopped || len(p.Records) == 0 {
				return
			}
			run := make([]delivery, len(p.Records))
			for i, r := range p.Records {
				run[i] = &kafkaDelivery{s: s, r: r}
			}
			handle(run)
			for _, d := range run {
				kd := d.(*kafkaDelivery)
				stopped = stopped || (!kd.acked && !kd.regroup)
			}
		})
		// After losing the group (a rebalance outran a long handler) the
		// member rejoins; records it handed over without committing come
		// again from the committed offset (replays are dropped).
		s.cl.AllowRebalance()
		if stopped {
			return
		}
	}
}

// Close implements unsubscriber: the member leaves its group (another
// member takes its partitions at the committed offsets).
func (s *kafkaSub) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		s.cl.Close()
	})
	return nil
}

type kafkaDelivery struct {
	s     *kafkaSub
	r     *kgo.Record
	acked bool
	// regroup is set when the offset could not be committed because the
	// member is no longer in the group's generation.
	regroup bool
}

func (d *kafkaDelivery) Data() []byte { return d.r.Value }

// Partition is the record's partition, and whether the topic has several
// (keyed by primary key, each ordered on its own).
func (d *kafkaDelivery) Partition() (int32, bool) { return d.r.Partition, d.s.partitions > 1 }

// kafkaAckGrace is how long an acknowledgement may still be retried once
// its subscription is closing.
const kafkaAckGrace = 10 * time.Second

// AckRun implements runAcker: committing the offset of a run's last record
// commits the run (the records of one partition, in offset order).
func (d *kafkaDelivery) AckRun(run []delivery) error {
	err := d.Ack()
	for _, r := range run[:len(run)-1] {
		kd := r.(*kafkaDelivery)
		kd.acked, kd.regroup = d.acked, d.regroup
	}
	return err
}

// Ack commits the record's offset, retrying until the group accepts it,
// also while the subscription closes (for up to kafkaAckGrace: a change
// handed over and not committed would be handed over again by the member
// taking the partition over).
func (d *kafkaDelivery) Ack() error {
	wait := 50 * time.Millisecond
	var closing time.Time
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := d.s.cl.CommitRecords(ctx, d.r)
		cancel()
		if err == nil {
			d.acked = true
			return nil
		}
		if errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.RebalanceInProgress) ||
			errors.Is(err, kerr.FencedInstanceID) {
			d.regroup = true
			d.s.log.WithError(err).Warn("Kafka offset not committed: the member lost its place in the group; the change comes again after the rebalance and is dropped as a replay")
			return err
		}
		if d.s.ctx.Err() != nil {
			if closing.IsZero() {
				closing = time.Now()
			} else if time.Since(closing) > kafkaAckGrace {
				return err
			}
		}
		d.s.log.WithError(err).Warn("Kafka offset commit failed; retrying")
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// publish implements transport: the dead letter's topic is created when
// missing (one partition), then the record is written with acks=all.
func (t *kafkaTransport) publish(ctx context.Context, subject string, data []byte) error {
	topic := mq.KafkaTopic(subject)
	if _, err := kadm.NewClient(t.producer).CreateTopic(ctx, 1, -1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create Kafka topic %s: %w", topic, err)
	}
	if err := t.producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: data}).FirstErr(); err != nil {
		return fmt.Errorf("publish to Kafka topic %s: %w", topic, err)
	}
	return nil
}

func (t *kafkaTransport) close() error {
	t.producer.Close()
	return nil
}
