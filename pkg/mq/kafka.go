package mq

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/dbsync/dbsync/pkg/failure"
)

// KafkaIDHeader is the record header carrying the envelope id, by which
// consumers drop replays.
const KafkaIDHeader = "dbsync-id"

// KafkaOptions configures a Kafka queue.
type KafkaOptions struct {
	// Brokers are the seed brokers, "host:port" each.
	Brokers []string
	// ClientID names the producer to the brokers (their logs, quotas).
	ClientID string
	// TLS, when set, encrypts the connections.
	TLS *tls.Config
	// SASL authenticates the connections (Mechanism "" for none).
	SASL KafkaSASL
	// Topic maps a subject to its topic; nil means KafkaTopic.
	Topic func(subject string) string
	// Partitions, ReplicationFactor and Retention are those of the topics
	// the queue creates (an existing topic is checked, never changed):
	// default 1 partition (a table's changes keep commit order), the
	// brokers' default replication factor (-1) and retention (0).
	Partitions        int32
	ReplicationFactor int16
	Retention         time.Duration
	// AckTimeout bounds how long a record may wait for the brokers'
	// acknowledgement (acks=all); default 30s.
	AckTimeout time.Duration
	// KeyByPrimaryKey keys each record by its row's primary key (the JSON
	// array of the key's values), so that with several partitions a row's
	// changes keep their order (a table's do not). Without it records have
	// no key, and a topic must have one partition to keep order.
	KeyByPrimaryKey bool
	// MaxBuffered bounds the records sent and not yet acknowledged;
	// default 8192.
	MaxBuffered int
}

// KafkaSASL is a SASL mechanism and its credentials.
type KafkaSASL struct {
	// Mechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism      string
	User, Password string
}

// KafkaMechanisms lists the supported SASL mechanisms.
func KafkaMechanisms() []string { return []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} }

// defaultKafkaMaxMessage is Kafka's default message.max.bytes, used until
// the brokers' own is known.
const defaultKafkaMaxMessage = 1048588

// kafkaRecordOverhead is what a record batch adds to a lone record: the
// batch header (61 bytes) and the record's own framing.
const kafkaRecordOverhead = 61 + 32

// Kafka publishes to Apache Kafka (or a compatible broker): one topic per
// subject, created when missing, written by an idempotent producer with
// acks=all, so a retry inside one session stores no duplicate and a failed
// record fails every record buffered behind it on its partition (nothing
// is stored behind a failure).
type Kafka struct {
	opts KafkaOptions
	log  logrus.FieldLogger
	cl   *kgo.Client
	adm  *kadm.Client

	// sendMu keeps concurrent Sends from interleaving their records.
	sendMu sync.Mutex
	// mu guards topics and brokerMax.
	mu sync.Mutex
	// topics maps a topic the queue checked or created to the largest
	// record it takes.
	topics    map[string]int
	brokerMax int

	closed    chan struct{}
	closeOnce sync.Once
	// broken is set when a record failed: nothing is sent after it until
	// Resume (franz-go fails what is buffered behind a failed record on
	// its partition, not what is produced later).
	broken atomic.Bool
}

var (
	_ MessageQueue   = (*Kafka)(nil)
	_ AsyncPublisher = (*Kafka)(nil)
	_ SizeChecker    = (*Kafka)(nil)
	_ Pinger         = (*Kafka)(nil)
	_ Resumer        = (*Kafka)(nil)
)

// NewKafka connects to the brokers and reads their largest message size.
// An unreachable cluster is an error wrapping ErrUnreachable; refused
// credentials a permanent one naming the mechanism and user.
func NewKafka(ctx context.Context, opts KafkaOptions, log logrus.FieldLogger) (*Kafka, error) {
	if len(opts.Brokers) == 0 {
		return nil, failure.Permanent(errors.New("mq: no Kafka brokers configured"))
	}
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	if opts.Topic == nil {
		opts.Topic = KafkaTopic
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 1
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = -1
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 30 * time.Second
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = 8192
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(opts.AckTimeout),
		kgo.MaxBufferedRecords(opts.MaxBuffered),
		kgo.WithLogger(kafkaLogger{log}),
	}
	if opts.ClientID != "" {
		kopts = append(kopts, kgo.ClientID(opts.ClientID))
	}
	if opts.TLS != nil {
		kopts = append(kopts, kgo.DialTLSConfig(opts.TLS))
	}
	switch opts.SASL.Mechanism {
	case "":
	case "PLAIN":
		kopts = append(kopts, kgo.SASL(plain.Auth{User: opts.SASL.User, Pass: opts.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		kopts = append(kopts, kgo.SASL(scram.Auth{User: opts.SASL.User, Pass: opts.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		kopts = append(kopts, kgo.SASL(scram.Auth{User: opts.SASL.User, Pass: opts.SASL.Password}.AsSha512Mechanism()))
	default:
		return nil, failure.Permanent(fmt.Errorf("mq: SASL mechanism %q is not one of %s", opts.SASL.Mechanism, strings.Join(KafkaMechanisms(), ", ")))
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, failure.Permanent(fmt.Errorf("mq: Kafka client for %s: %w", strings.Join(opts.Brokers, ","), err))
	}
	k := &Kafka{opts: opts, log: log, cl: cl, adm: kadm.NewClient(cl), topics: map[string]int{}, brokerMax: defaultKafkaMaxMessage, closed: make(chan struct{})}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, k.connectError(err)
	}
	k.readBrokerMax(ctx)
	log.WithFields(logrus.Fields{"brokers": strings.Join(opts.Brokers, ","), "max_message_bytes": k.brokerMax}).Info("mq: connected to Kafka")
	return k, nil
}

// connectError classifies a failed first contact.
func (k *Kafka) connectError(err error) error {
	addr := strings.Join(k.opts.Brokers, ",")
	if errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, kerr.UnsupportedSaslMechanism) {
		return failure.WithFix(failure.Permanent(fmt.Errorf("mq: Kafka at %s refused the login of %q (SASL %s): %w", addr, k.opts.SASL.User, k.opts.SASL.Mechanism, err)),
			"check Kafka.SASL (mechanism, user, password file) against the brokers' listener")
	}
	if k.opts.SASL.Mechanism != "" {
		// A broker may drop the connection of a failed login without a
		// reason.
		return mark(ErrUnreachable, fmt.Errorf("mq: Kafka at %s (SASL %s as %q): %w; check the brokers' address and Kafka.SASL", addr, k.opts.SASL.Mechanism, k.opts.SASL.User, err))
	}
	return mark(ErrUnreachable, fmt.Errorf("mq: Kafka at %s: %w", addr, err))
}

// readBrokerMax reads message.max.bytes of a broker; the default stays
// when the brokers do not say (no DescribeConfigs permission).
func (k *Kafka) readBrokerMax(ctx context.Context) {
	rcs, err := k.adm.DescribeBrokerConfigs(ctx)
	if err != nil {
		k.log.WithError(err).Debug("mq: cannot read the brokers' message.max.bytes; assuming Kafka's default")
		return
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "message.max.bytes" && c.Value != nil {
				if n, err := strconv.Atoi(*c.Value); err == nil && n > 0 {
					k.mu.Lock()
					k.brokerMax = n
					k.mu.Unlock()
					return
				}
			}
		}
	}
}

// CheckSize implements SizeChecker: a message (with its id header and
// batch framing) must fit its topic's max.message.bytes, or the brokers'
// message.max.bytes for a topic not seen yet.
func (k *Kafka) CheckSize(m *Message) error {
	topic := k.opts.Topic(m.Subject)
	k.mu.Lock()
	limit, ok := k.topics[topic]
	if !ok {
		limit = k.brokerMax
	}
	k.mu.Unlock()
	size := len(m.Data) + len(m.ID) + len(KafkaIDHeader) + kafkaRecordOverhead
	if size > limit {
		return mark(ErrTooLarge, fmt.Errorf("mq: message %s of %d bytes is larger than Kafka topic %s accepts (%d bytes, max.message.bytes)", m.ID, size, topic, limit))
	}
	return nil
}

// Publish implements MessageQueue: Send, then Wait, then Resume after a
// failure (the caller has it in hand).
func (k *Kafka) Publish(ctx context.Context, msgs []Message) error {
	err := sendAndWait(ctx, k, msgs)
	if err != nil {
		k.Resume()
	}
	return err
}

// Resume implements Resumer: Sends are stored again.
func (k *Kafka) Resume() { k.broken.Store(false) }

// Send implements AsyncPublisher. It checks every subject first (nothing
// is sent when one is refused), creates the topics it has not seen, then
// hands the records over in order. Wait's error names the first record
// that failed; the records buffered behind it on its partition fail with
// it.
func (k *Kafka) Send(ctx context.Context, msgs []Message) (Pending, error) {
	if k.isClosed() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mq: publish of %d messages: %w", len(msgs), err)
	}
	if len(msgs) == 0 {
		return donePending{}, nil
	}
	if k.broken.Load() {
		return nil, mark(ErrChainBroken, fmt.Errorf("mq: publish of %d messages: an earlier message failed; nothing is sent until Resume", len(msgs)))
	}
	// A refused message ends the batch: the ones before it are sent, it
	// and what follows are not.
	var refused *PublishError
	var topics []string
	seen := map[string]bool{}
	for i := range msgs {
		m := &msgs[i]
		topic := k.opts.Topic(m.Subject)
		err := checkSubject(m.Subject, false)
		if err == nil {
			err = CheckKafkaTopic(topic)
		}
		if err != nil {
			refused = &PublishError{Subject: m.Subject, ID: m.ID, Err: mark(ErrRejected, err)}
			msgs = msgs[:i]
			break
		}
		if !seen[topic] {
			seen[topic] = true
			topics = append(topics, topic)
		}
	}
	if err := k.ensureTopics(ctx, topics); err != nil {
		return nil, err
	}
	p, err := k.produce(ctx, msgs)
	if refused == nil {
		return p, err
	}
	if err == nil {
		err = p.Wait(ctx) // the ones before it are stored before the refusal is told
	}
	k.broken.Store(true)
	if err != nil {
		return nil, err
	}
	return nil, refused
}

// produce hands msgs to the client in order, unless a record failed
// meanwhile.
func (k *Kafka) produce(ctx context.Context, msgs []Message) (Pending, error) {
	if len(msgs) == 0 {
		return donePending{}, nil
	}
	k.sendMu.Lock()
	defer k.sendMu.Unlock()
	p := &kafkaPending{k: k, left: len(msgs), done: make(chan struct{})}
	for i := range msgs {
		if k.broken.Load() {
			// A record failed while this batch was handed over: the rest
			// is not sent, and counts as failed.
			for _, m := range msgs[i:] {
				p.finish(m, mark(ErrChainBroken, errors.New("mq: an earlier message failed")))
			}
			break
		}
		m := msgs[i]
		rec := &kgo.Record{Topic: k.opts.Topic(m.Subject), Value: m.Data, Headers: []kgo.RecordHeader{{Key: KafkaIDHeader, Value: []byte(m.ID)}}}
		if k.opts.KeyByPrimaryKey {
			rec.Key = primaryKeyOf(&m)
		}
		k.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) { p.finish(m, err) })
	}
	return p, nil
}

// kafkaPending is a sent batch: its promises count down left and keep the
// first failure.
type kafkaPending struct {
	k    *Kafka
	mu   sync.Mutex
	left int
	err  error
	done chan struct{}
}

func (p *kafkaPending) finish(m Message, err error) {
	if err != nil {
		p.k.broken.Store(true)
	}
	if errors.Is(err, kerr.MessageTooLarge) {
		// The brokers take less than the queue knew: the next pass's
		// CheckSize finds this message before sending it.
		p.k.learnLimit(p.k.opts.Topic(m.Subject), len(m.Data)+len(m.ID)+len(KafkaIDHeader)+kafkaRecordOverhead-1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && p.err == nil {
		p.err = &PublishError{Subject: m.Subject, ID: m.ID, Err: kafkaError(err)}
	}
	if p.left--; p.left == 0 {
		close(p.done)
	}
}

// Wait implements Pending.
func (p *kafkaPending) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("mq: waiting for Kafka's acknowledgements: %w", ctx.Err())
	case <-p.k.closed:
		return ErrClosed
	}
}

// learnLimit lowers topic's known size limit to at most limit.
func (k *Kafka) learnLimit(topic string, limit int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if cur, ok := k.topics[topic]; !ok || limit < cur {
		k.topics[topic] = limit
	}
}

// kafkaError maps a record's failure to the package's errors.
func kafkaError(err error) error {
	switch {
	case errors.Is(err, ErrChainBroken):
		return err
	case errors.Is(err, kgo.ErrClientClosed):
		return mark(ErrClosed, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return mark(ErrTooLarge, err)
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return failure.WithFix(failure.Permanent(err), "grant the producer's principal WRITE and DESCRIBE on its topics (and CREATE on the cluster to create them), IDEMPOTENT_WRITE on the cluster for Kafka before 3.0")
	case errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.InvalidRecord):
		return mark(ErrRejected, err)
	}
	return mark(ErrConnectionLost, err)
}

// ensureTopics checks the topics the queue has not seen yet: a missing
// one is created with the configured partitions, replication factor and
// retention; an existing one with another number of partitions is an error
// (reported, never changed). It reads each one's max.message.bytes.
func (k *Kafka) ensureTopics(ctx context.Context, topics []string) error {
	k.mu.Lock()
	var unknown []string
	for _, t := range topics {
		if _, ok := k.topics[t]; !ok {
			unknown = append(unknown, t)
		}
	}
	k.mu.Unlock()
	if len(unknown) == 0 {
		return nil
	}
	details, err := k.adm.ListTopics(ctx, unknown...)
	if err != nil {
		return kafkaAdminError("list topics", err)
	}
	var missing []string
	for _, t := range unknown {
		d, ok := details[t]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			missing = append(missing, t)
		case d.Err != nil:
			return kafkaAdminError("describe topic "+t, d.Err)
		case int32(len(d.Partitions)) != k.opts.Partitions:
			return failure.WithFix(failure.Permanent(fmt.Errorf("mq: Kafka topic %s has %d partitions, Kafka.Partitions says %d: dbsync does not change an existing topic",
				t, len(d.Partitions), k.opts.Partitions)), "set Kafka.Partitions to the topic's partition count, or recreate the topic")
		default:
			if rf := d.Partitions.NumReplicas(); k.opts.ReplicationFactor > 0 && rf != int(k.opts.ReplicationFactor) {
				k.log.WithFields(logrus.Fields{"topic": t, "replication_factor": rf, "configured": k.opts.ReplicationFactor}).
					Warn("mq: the existing Kafka topic has another replication factor than Kafka.ReplicationFactor; dbsync does not change it")
			}
		}
	}
	k.warnRetention(ctx, unknown, missing)
	if len(missing) > 0 {
		configs := map[string]*string{}
		if k.opts.Retention > 0 {
			ms := strconv.FormatInt(k.opts.Retention.Milliseconds(), 10)
			configs["retention.ms"] = &ms
		}
		created, err := k.adm.CreateTopics(ctx, k.opts.Partitions, k.opts.ReplicationFactor, configs, missing...)
		if err != nil {
			return kafkaAdminError("create topics", err)
		}
		for _, r := range created.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				return kafkaAdminError("create topic "+r.Topic, r.Err)
			}
			k.log.WithFields(logrus.Fields{"topic": r.Topic, "partitions": k.opts.Partitions, "replication_factor": k.opts.ReplicationFactor}).Info("mq: created Kafka topic")
		}
	}
	limits := map[string]int{}
	if rcs, err := k.adm.DescribeTopicConfigs(ctx, unknown...); err == nil {
		for _, rc := range rcs {
			for _, c := range rc.Configs {
				// Only a topic's own setting counts; otherwise the brokers'
				// message.max.bytes applies.
				if c.Key == "max.message.bytes" && c.Value != nil && c.Source == kmsg.ConfigSourceDynamicTopicConfig {
					if n, err := strconv.Atoi(*c.Value); err == nil && n > 0 {
						limits[rc.Name] = n
					}
				}
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, t := range unknown {
		limit, ok := limits[t]
		if !ok {
			limit = k.brokerMax
		}
		k.topics[t] = limit
	}
	return nil
}

// warnRetention logs, for the existing topics among topics, a retention
// other than Kafka.Retention (when set); dbsync does not change it.
func (k *Kafka) warnRetention(ctx context.Context, topics, created []string) {
	if k.opts.Retention <= 0 {
		return
	}
	var existing []string
	for _, t := range topics {
		if !slices.Contains(created, t) {
			existing = append(existing, t)
		}
	}
	if len(existing) == 0 {
		return
	}
	rcs, err := k.adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return
	}
	want := strconv.FormatInt(k.opts.Retention.Milliseconds(), 10)
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil && *c.Value != want {
				k.log.WithFields(logrus.Fields{"topic": rc.Name, "retention_ms": *c.Value, "configured_ms": want}).
					Warn("mq: the existing Kafka topic has another retention than Kafka.Retention; dbsync does not change it")
			}
		}
	}
}

// kafkaAdminError classifies an admin request's failure.
func kafkaAdminError(what string, err error) error {
	if errors.Is(err, kgo.ErrClientClosed) {
		return mark(ErrClosed, fmt.Errorf("mq: Kafka: %s: %w", what, err))
	}
	if errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) {
		return failure.WithFix(failure.Permanent(fmt.Errorf("mq: Kafka: %s: %w", what, err)),
			"grant the producer's principal DESCRIBE and CREATE on its topics (or create them yourself with the partitions Kafka.Partitions says)")
	}
	if errors.Is(err, kerr.InvalidReplicationFactor) || errors.Is(err, kerr.InvalidPartitions) || errors.Is(err, kerr.InvalidConfig) || errors.Is(err, kerr.PolicyViolation) {
		return failure.WithFix(failure.Permanent(fmt.Errorf("mq: Kafka: %s: %w", what, err)),
			"check Kafka.Partitions, Kafka.ReplicationFactor and Kafka.Retention against the cluster (a replication factor above the broker count is refused)")
	}
	return mark(ErrConnectionLost, fmt.Errorf("mq: Kafka: %s: %w", what, err))
}

// Ping implements Pinger.
func (k *Kafka) Ping(ctx context.Context) error {
	if k.isClosed() {
		return ErrClosed
	}
	if err := k.cl.Ping(ctx); err != nil {
		return mark(ErrConnectionLost, fmt.Errorf("mq: Kafka at %s: %w", strings.Join(k.opts.Brokers, ","), err))
	}
	return nil
}

// Close implements MessageQueue: records not yet acknowledged fail with
// ErrClosed.
func (k *Kafka) Close() error {
	k.closeOnce.Do(func() {
		close(k.closed)
		k.cl.Close()
	})
	return nil
}

func (k *Kafka) isClosed() bool {
	select {
	case <-k.closed:
		return true
	default:
		return false
	}
}

// kafkaLogger hands franz-go's log lines to logrus, one level down (its
// info is chatty).
type kafkaLogger struct{ log logrus.FieldLogger }

func (kafkaLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (l kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := logrus.Fields{"component": "franz-go"}
	for i := 0; i+1 < len(keyvals); i += 2 {
		fields[fmt.Sprint(keyvals[i])] = keyvals[i+1]
	}
	e := l.log.WithFields(fields)
	switch level {
	case kgo.LogLevelError:
		e.Warn(msg)
	case kgo.LogLevelWarn:
		e.Info(msg)
	default:
		e.Debug(msg)
	}
}

// primaryKeyOf is the key of a keyed record: the JSON array of the
// primary key's values of the row as it was before the change (its before
// image: an update's after image may lack the key with
// binlog_row_image=MINIMAL), or after for an insert; the subject for a
// table without a primary key or a message that is not a row change (one
// partition keeps their order).
func primaryKeyOf(m *Message) []byte {
	var env struct {
		PK     []string                   `json:"pk"`
		Before map[string]json.RawMessage `json:"before"`
		After  map[string]json.RawMessage `json:"after"`
	}
	if err := json.Unmarshal(m.Data, &env); err != nil || len(env.PK) == 0 {
		return []byte(m.Subject)
	}
	img := env.Before
	if img == nil {
		img = env.After
	}
	key := []byte{'['}
	for i, col := range env.PK {
		if i > 0 {
			key = append(key, ',')
		}
		v, ok := img[col]
		if !ok {
			return []byte(m.Subject)
		}
		key = append(key, v...)
	}
	return append(key, ']')
}

// KafkaTopic maps a subject to a Kafka topic name: letters, digits, '.'
// and '-' stay; '_' becomes "__" and every other byte "_xx" (its hex
// value), so distinct subjects never share a topic. "dbsync.shop.orders"
// stays "dbsync.shop.orders"; "dbsync.shop.order_items" becomes
// "dbsync.shop.order__items"; "dbsync.shop.größe" becomes
// "dbsync.shop.gr_c3_b6_c3_9fe".
func KafkaTopic(subject string) string {
	var b strings.Builder
	for i := 0; i < len(subject); i++ {
		c := subject[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		case c == '_':
			b.WriteString("__")
		default:
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

// CheckKafkaTopic returns nil when name can be a Kafka topic: 1 to 249
// characters of letters, digits, '.', '_' and '-', not "." or "..".
func CheckKafkaTopic(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%q cannot be a Kafka topic name", name)
	}
	if len(name) > 249 {
		return fmt.Errorf("Kafka topic name %.40q... is %d characters long, more than Kafka's 249 (shorten ProName, the database or the table name)", name, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q cannot be a Kafka topic name (byte %q)", name, c)
		}
	}
	return nil
}
