// Package client is dbsync's consumer SDK: it subscribes to the subjects the
// producer publishes ("<prefix><db>.<table>"), turns each envelope back into
// the caller's structs, and delivers changes in order, acknowledging a
// message only after the handler returned nil and dropping the duplicates a
// producer restart can cause.
//
// New code uses the typed API:
//
//	c, err := client.NewClient(client.Config{ClusterID: "stan", ClientID: "billing", Host: "nats://nats", Port: "4222"})
//	sub, err := client.Subscribe(c, "shop", "orders", func(ctx context.Context, ch client.Change[Order]) error {
//		// ch.Type, ch.Before, ch.After (*Order), ch.Source, ch.CommitTime
//		return nil
//	})
//
// With Config.Broker "jetstream" the same API consumes from a NATS
// JetStream stream (Config.Stream, default "DBSYNC"), with the same
// semantics.
//
// SubscribeBatch and Client.SubscribeEnvelopeBatch hand over the waiting
// changes of a table in batches, acknowledged together; Batch.Progress
// stored in the handler's own transaction, with a DedupStore reading it
// back, writes each change exactly once into a database (cmd/sync does).
//
// dbsync 1's callback API (Register with a func(msg []byte) error handler,
// and Build) works unchanged.
package client

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/mq"
)

// StartPosition says where a new durable subscription begins.
type StartPosition int

const (
	// StartAtFirst begins at the first message the broker still holds (default).
	StartAtFirst StartPosition = iota
	// StartAtNew begins with the next message published.
	StartAtNew
)

// Brokers the SDK consumes from (Config.Broker).
const (
	// BrokerStan is NATS Streaming (the default).
	BrokerStan = "stan"
	// BrokerJetStream is NATS JetStream.
	BrokerJetStream = "jetstream"
	// BrokerKafka is Apache Kafka (the producer's MQName "kafka").
	BrokerKafka = "kafka"
)

// Config.AckWait defaults.
const (
	DefaultJetStreamAckWait = 2 * time.Second
	DefaultStanAckWait      = 3 * time.Second
)

// JetStream defaults, the producer's.
const (
	// DefaultJetStreamStream is Config.Stream's default.
	DefaultJetStreamStream = mq.DefaultJetStreamStream
	// DefaultJetStreamPrefix is Config.Prefix's default with "jetstream"
	// (a stream cannot capture unprefixed "*.*" subjects).
	DefaultJetStreamPrefix = mq.DefaultJetStreamSubjectPrefix
)

// Config says how to reach the broker and how to deliver. ClusterID,
// ClientID, Host and Port keep the names and meaning of dbsync 1's client.
type Config struct {
	// ClusterID is the NATS Streaming cluster id (required for "stan",
	// unused for "jetstream").
	ClusterID string
	// ClientID identifies this consumer; it must be unique among running
	// consumers (NATS Streaming refuses a second one; with JetStream two
	// would share the durable consumers like a queue group). Each ClientID
	// receives every change (broadcast) unless QueueGroup is set.
	ClientID string
	// Host is "nats://host" or "host"; Port is appended unless Host has one.
	// A "tls://host" Host requires TLS.
	Host string
	Port string

	// User and Password, Token, NKeySeedFile (a file holding the user's
	// nkey seed) or CredsFile (a NATS credentials file): at most one way
	// to authenticate to the NATS server; none sends no credentials. A
	// server that refuses them makes NewClient fail with an error matching
	// ErrUnauthorized, which never shows the secret.
	User         string
	Password     string
	Token        string
	NKeySeedFile string
	CredsFile    string
	// TLS secures the connection (see TLS for when it is on).
	TLS TLS

	// Broker is BrokerStan ("stan", the default), BrokerJetStream
	// ("jetstream") or BrokerKafka ("kafka").
	Broker string
	// Brokers are the Kafka seed brokers ("host:port"), with "kafka"
	// instead of Host and Port. Each subscription is a member of the
	// consumer group "<ClientID or QueueGroup>.<topic>"; its offset is
	// committed only after the handler returned nil.
	Brokers []string
	// SASLMechanism authenticates to Kafka with User and Password:
	// "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" ("" for none).
	SASLMechanism string
	// Stream is the JetStream stream the producer publishes to (its
	// JetStream.Stream); default "DBSYNC". Used only with "jetstream", where
	// each subscription is a durable pull consumer on it named after
	// ClientID (or QueueGroup) and the subject.
	Stream string

	// Prefix is the producer's ProName (subjects are Prefix+db+"."+table).
	// Default "" with "stan" and "dbsync." with "jetstream", as the
	// producer's.
	Prefix string
	// Database is used by Register and Subscribe when neither the call nor
	// the model's TableName() ("db.table") names one.
	Database string
	// QueueGroup shares each subscribed table among the running members of
	// the group: each change goes to one of them.
	QueueGroup string
	// StartAt is where a new durable subscription begins; an existing one
	// resumes after its last acknowledged message.
	StartAt StartPosition
	// Location interprets DATETIME values (which carry no zone); default UTC.
	Location *time.Location
	// Strict makes a column with no struct field an error.
	Strict bool
	// RetryMin and RetryMax bound the backoff before a failed message is
	// handed to the handler again; defaults 100ms and 30s.
	RetryMin, RetryMax time.Duration
	// AckWait is how long the broker waits for an acknowledgement before it
	// sends a message again. It also bounds how long a subscription can
	// wait after a broker crash: a crashed server may restore a message the
	// SDK already acknowledged as still pending, and sends it again (dropped
	// as a duplicate) only after AckWait. Default DefaultJetStreamAckWait
	// with JetStream, where the SDK tells the server every AckWait/3 that a
	// message is still being handled; DefaultStanAckWait with NATS
	// Streaming, which has no such signal: there, a handler running longer
	// than AckWait gets the message again (dropped as a duplicate by the same
	// subscription; in a queue group another member may hand it over too, so
	// keep AckWait above the handler's run time there).
	AckWait time.Duration
	// Dedup remembers the last processed change per subject; default an
	// in-memory store (use OpenBoltDedup to drop duplicates across restarts).
	Dedup DedupStore
	// Logger receives the SDK's logs; default a new logrus logger.
	Logger logrus.FieldLogger
	// OnError, when set, is told about every failed delivery attempt
	// (*DeliveryError), every message that cannot be decoded
	// (*PoisonError), every change from another binlog history
	// (*HistoryChangeError) and every change that arrived late
	// (*LateChangeError).
	OnError func(error)
	// OnPoison says what happens to a message that cannot be decoded (bad
	// JSON, an unknown envelope version, a missing field, another table's
	// envelope, a value that does not fit its field): PoisonBlock (the
	// default) stops the subscription at it, unacknowledged, and
	// Subscription.Err reports it; PoisonDeadLetter copies it to DeadLetter
	// (or DeadLetterSubject), acknowledges it and goes on.
	OnPoison string
	// DeadLetter, when set, receives the undecodable messages with
	// PoisonDeadLetter; a non-nil error makes the SDK try again after a
	// backoff (the message is not acknowledged before it succeeds).
	DeadLetter func(ctx context.Context, p *PoisonError) error
	// DeadLetterSubject is where PoisonDeadLetter publishes undecodable
	// messages when DeadLetter is nil: a JSON record with the subject, id,
	// client id, error and the message (base64), durably (a NATS Streaming
	// channel; with JetStream a stream must capture the subject, and it must
	// not be the producer's stream). Default "dbsync_poison." + ClientID.
	DeadLetterSubject string
	// StopOnHistoryChange stops a subscription at a change from another
	// binlog history than the last one it handed over (RESET MASTER, a
	// producer pointed at another server, a renamed binlog), instead of
	// reporting it and handing it over.
	StopOnHistoryChange bool
}

// Poison policies (Config.OnPoison).
const (
	// PoisonBlock stops the subscription at an undecodable message.
	PoisonBlock = "block"
	// PoisonDeadLetter copies it to the dead letter and goes on.
	PoisonDeadLetter = "deadletter"
)

// Client is a connection to the broker plus the subscriptions made on it.
type Client struct {
	cfg Config
	log logrus.FieldLogger
	// security are the nats options of cfg's credentials and TLS.
	security []nats.Option
	ctx      context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex
	tr        transport
	subs      []*Subscription
	decoders  map[reflect.Type]*Decoder
	closed    bool
	reconnect chan struct{}
	wg        sync.WaitGroup
}

// NewClient connects to the broker. It returns an error (never exits) when
// the configuration is incomplete or the broker cannot be reached.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Broker == "" {
		cfg.Broker = BrokerStan
	}
	required := map[string]string{"ClientID": cfg.ClientID, "Host": cfg.Host}
	switch cfg.Broker {
	case BrokerKafka:
		delete(required, "Host")
		if len(cfg.Brokers) == 0 {
			return nil, errors.New("client.Config.Brokers is empty: name the Kafka brokers (host:port) with Broker \"kafka\"")
		}
		if cfg.Prefix == "" {
			cfg.Prefix = DefaultJetStreamPrefix
		}
	case BrokerStan:
		required["ClusterID"] = cfg.ClusterID
	case BrokerJetStream:
		if cfg.Stream == "" {
			cfg.Stream = DefaultJetStreamStream
		}
		if cfg.Prefix == "" {
			cfg.Prefix = DefaultJetStreamPrefix
		}
	default:
		return nil, fmt.Errorf("client.Config.Broker %q is unknown: use %q (NATS Streaming, the default), %q (NATS JetStream) or %q (Kafka)", cfg.Broker, BrokerStan, BrokerJetStream, BrokerKafka)
	}
	var missing []error
	for _, name := range []string{"ClusterID", "ClientID", "Host"} {
		if v, ok := required[name]; ok && v == "" {
			missing = append(missing, fmt.Errorf("client.Config.%s is empty", name))
		}
	}
	if len(missing) > 0 {
		return nil, errors.Join(missing...)
	}
	if cfg.Broker == BrokerStan {
		if err := mq.CheckStanClientID(cfg.ClientID); err != nil {
			return nil, fmt.Errorf("client.Config.ClientID %q %w", cfg.ClientID, err)
		}
	} else if cfg.Broker == BrokerJetStream {
		if err := mq.CheckStreamName(cfg.Stream); err != nil {
			return nil, fmt.Errorf("client.Config.Stream %q %w", cfg.Stream, err)
		}
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultStanAckWait
		if cfg.Broker == BrokerJetStream {
			cfg.AckWait = DefaultJetStreamAckWait
		}
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Dedup == nil {
		cfg.Dedup = NewMemoryDedup()
	}
	switch cfg.OnPoison {
	case "":
		cfg.OnPoison = PoisonBlock
	case PoisonBlock, PoisonDeadLetter:
	default:
		return nil, fmt.Errorf("client.Config.OnPoison %q is unknown: use %q (stop at an undecodable message, the default) or %q (copy it to the dead letter and go on)",
			cfg.OnPoison, PoisonBlock, PoisonDeadLetter)
	}
	if cfg.DeadLetterSubject == "" {
		cfg.DeadLetterSubject = "dbsync_poison." + cfg.ClientID
	}
	security, err := cfg.securityOptions(natsURL(cfg.Host, cfg.Port))
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = logrus.New()
	}
	c := &Client{cfg: cfg, log: log.WithField("client_id", cfg.ClientID), decoders: map[reflect.Type]*Decoder{},
		reconnect: make(chan struct{}, 1), security: security}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.Broker == BrokerKafka {
		// Kafka clients reconnect by themselves.
		tlsConfig, err := cfg.tlsConfig("")
		if err != nil {
			c.cancel()
			return nil, err
		}
		ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
		defer cancel()
		tr, err := dialKafka(ctx, kafkaOptions{Brokers: cfg.Brokers, ClientID: cfg.ClientID, TLS: tlsConfig,
			SASLMechanism: cfg.SASLMechanism, User: cfg.User, Password: cfg.Password}, c.log)
		if err != nil {
			c.cancel()
			return nil, err
		}
		c.tr = tr
		return c, nil
	}
	if cfg.Broker == BrokerJetStream {
		// The NATS connection reconnects by itself and each subscription
		// keeps pulling through outages.
		tr, err := dialJetStream(cfg.jetstreamOptions(security), c.log)
		if err != nil {
			c.cancel()
			return nil, err
		}
		c.tr = tr
		return c, nil
	}
	tr, err := dialStan(cfg.stanOptions(security), c.connectionLost, c.log)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.tr = tr
	c.wg.Add(1)
	go c.reconnectLoop()
	return c, nil
}

// Close stops every subscription (keeping their durable positions, so a
// new client with the same ClientID resumes where this one stopped), waits
// for running handlers to return, and closes the connection. A message whose
// handler had not succeeded is not acknowledged and comes again.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.cancel()
	subs := c.subs
	c.mu.Unlock()
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.close()
		}()
	}
	wg.Wait()
	c.wg.Wait()
	c.mu.Lock()
	if c.tr != nil {
		errs = append(errs, c.tr.close())
	}
	c.mu.Unlock()
	return errors.Join(errs...)
}

// connectionLost is called by the transport when the broker connection died.
func (c *Client) connectionLost(err error) {
	c.log.WithError(err).Error("broker connection lost; reconnecting")
	select {
	case c.reconnect <- struct{}{}:
	default:
	}
}

// reconnectLoop (NATS Streaming only) re-dials after a lost connection and
// subscribes again; the durable subscriptions resume after their last
// acknowledged message.
func (c *Client) reconnectLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.reconnect:
		}
		for attempt := 1; ; attempt++ {
			if !c.sleep(c.backoff(attempt)) {
				return
			}
			tr, err := dialStan(c.cfg.stanOptions(c.security), c.connectionLost, c.log)
			if err != nil {
				c.log.WithError(err).Warn("reconnect failed")
				continue
			}
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				_ = tr.close()
				return
			}
			if c.tr != nil {
				_ = c.tr.close()
			}
			c.tr = tr
			subs := append([]*Subscription(nil), c.subs...)
			c.mu.Unlock()
			for _, s := range subs {
				if err := s.start(tr); err != nil {
					c.log.WithError(err).WithField("subject", s.subject).Error("resubscribe failed")
				}
			}
			break
		}
	}
}

// backoff is the wait before attempt number attempt (1-based) of a retry.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.RetryMin
	for i := 1; i < attempt && d < c.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.cfg.RetryMax)
}

// sleep waits d; false when the client closed meanwhile.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// decoder returns the (cached) decoding plan of struct type t.
func (c *Client) decoder(t reflect.Type) (*Decoder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.decoders[t]; ok {
		return d, nil
	}
	d, err := NewDecoder(t, DecodeOptions{Location: c.cfg.Location, Strict: c.cfg.Strict})
	if err != nil {
		return nil, err
	}
	c.decoders[t] = d
	return d, nil
}

// stanOptions are the NATS Streaming transport's settings from c.
func (c Config) stanOptions(security []nats.Option) stanOptions {
	return stanOptions{URL: natsURL(c.Host, c.Port), ClusterID: c.ClusterID, ClientID: c.ClientID, Security: security}
}

// jetstreamOptions are the JetStream transport's settings from c.
func (c Config) jetstreamOptions(security []nats.Option) jetstreamOptions {
	return jetstreamOptions{URL: natsURL(c.Host, c.Port), Stream: c.Stream, ClientID: c.ClientID, Security: security}
}
