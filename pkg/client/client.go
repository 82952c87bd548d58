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
// The original dbsync API (Register with a func(msg []byte) error handler
// and Build) keeps working.
package client

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
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
)

// JetStream defaults, the producer's.
const (
	// DefaultJetStreamStream is Config.Stream's default.
	DefaultJetStreamStream = "DBSYNC"
	// DefaultJetStreamPrefix is Config.Prefix's default with "jetstream"
	// (a stream cannot capture unprefixed "*.*" subjects).
	DefaultJetStreamPrefix = "dbsync."
)

// Config says how to reach the broker and how to deliver. The first four
// fields are the original dbsync client's.
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
	Host string
	Port string

	// Broker is BrokerStan ("stan", the default) or BrokerJetStream
	// ("jetstream").
	Broker string
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
	// sends a message again; default 30s.
	AckWait time.Duration
	// Dedup remembers the last processed change per subject; default an
	// in-memory store (use OpenBoltDedup to drop duplicates across restarts).
	Dedup DedupStore
	// Logger receives the SDK's logs; default a new logrus logger.
	Logger logrus.FieldLogger
	// OnError, when set, is told about every failed delivery attempt.
	OnError func(error)
}

// Client is a connection to the broker plus the subscriptions made on it.
type Client struct {
	cfg    Config
	log    logrus.FieldLogger
	ctx    context.Context
	cancel context.CancelFunc

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
		return nil, fmt.Errorf("client.Config.Broker %q is unknown: use %q (NATS Streaming, the default) or %q (NATS JetStream)", cfg.Broker, BrokerStan, BrokerJetStream)
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
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Dedup == nil {
		cfg.Dedup = NewMemoryDedup()
	}
	log := cfg.Logger
	if log == nil {
		log = logrus.New()
	}
	c := &Client{cfg: cfg, log: log.WithField("client_id", cfg.ClientID), decoders: map[reflect.Type]*Decoder{},
		reconnect: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.Broker == BrokerJetStream {
		// The NATS connection reconnects by itself and each subscription
		// keeps pulling through outages.
		tr, err := dialJetStream(cfg, c.log)
		if err != nil {
			c.cancel()
			return nil, err
		}
		c.tr = tr
		return c, nil
	}
	tr, err := dialStan(cfg, c.connectionLost, c.log)
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
			tr, err := dialStan(c.cfg, c.connectionLost, c.log)
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

// DeliveryError reports one failed attempt to deliver a change; the change
// is handed over again after a backoff, and later changes of its subject
// wait for it.
type DeliveryError struct {
	Subject string
	ID      string
	Attempt int
	Err     error
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("subject %s, change %s, attempt %d: %v", e.Subject, e.ID, e.Attempt, e.Err)
}
func (e *DeliveryError) Unwrap() error { return e.Err }

// rawHandler handles one decoded envelope (raw is the message as received).
type rawHandler func(ctx context.Context, env *envelope.Envelope, raw []byte) error

// Subscription is one subject being consumed.
type Subscription struct {
	c       *Client
	subject string
	handle  rawHandler
	// ctx is cancelled when the subscription or its client closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex
	sub unsubscriber
}

// Subject is the broker subject consumed.
func (s *Subscription) Subject() string { return s.subject }

// Close stops delivery on this subject and keeps the durable position: the
// handler's ctx is cancelled, a change being retried is given up
// unacknowledged (it comes again), and with "jetstream" Close waits for the
// running handler to return.
func (s *Subscription) Close() error {
	s.c.mu.Lock()
	for i, x := range s.c.subs {
		if x == s {
			s.c.subs = append(s.c.subs[:i], s.c.subs[i+1:]...)
			break
		}
	}
	s.c.mu.Unlock()
	return s.close()
}

func (s *Subscription) close() error {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub == nil {
		return nil
	}
	err := s.sub.Close()
	s.sub = nil
	return err
}

func (s *Subscription) start(tr transport) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := tr.subscribe(s.subject, subOptions{
		durable:    "dbsync",
		queueGroup: s.c.cfg.QueueGroup,
		fromStart:  s.c.cfg.StartAt == StartAtFirst,
		ackWait:    s.c.cfg.AckWait,
	}, s.deliver)
	if err != nil {
		return err
	}
	s.sub = sub
	return nil
}

// subscribe starts consuming subject with h.
func (c *Client) subscribe(subject string, h rawHandler) (*Subscription, error) {
	s := &Subscription{c: c, subject: subject, handle: h}
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.cancel()
		return nil, errors.New("client is closed")
	}
	tr := c.tr
	c.subs = append(c.subs, s)
	c.mu.Unlock()
	if err := s.start(tr); err != nil {
		_ = s.Close()
		return nil, err
	}
	c.log.WithField("subject", subject).Info("subscribed")
	return s, nil
}

// deliver runs one message through dedup and the handler. The broker hands
// a subscription's messages over one at a time, so while deliver retries a
// failing message, later messages of the subject wait.
func (s *Subscription) deliver(d delivery) {
	c := s.c
	c.mu.Lock()
	if c.closed || s.ctx.Err() != nil {
		c.mu.Unlock()
		return // not acknowledged: comes again to the next client
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()
	raw := d.Data()
	for attempt := 1; ; attempt++ {
		env, err := envelope.Decode(raw)
		if err == nil {
			var dup bool
			if dup, err = s.duplicate(env); err == nil && dup {
				_ = d.Ack()
				return
			}
			if err == nil {
				if err = s.call(env, raw); err == nil {
					if err = c.cfg.Dedup.Save(s.subject, CoordinateOf(env)); err == nil {
						if err := d.Ack(); err != nil {
							c.log.WithError(err).WithField("subject", s.subject).Warn("ack failed; the change may come again and will be dropped as a duplicate")
						}
						return
					}
				}
			}
		}
		id := "?"
		if env != nil {
			id = env.ID
		}
		derr := &DeliveryError{Subject: s.subject, ID: id, Attempt: attempt, Err: err}
		c.log.WithError(err).WithFields(logrus.Fields{"subject": s.subject, "id": id, "attempt": attempt}).Error("delivery failed; retrying")
		if c.cfg.OnError != nil {
			c.cfg.OnError(derr)
		}
		if !s.sleep(c.backoff(attempt)) {
			return // closed: not acknowledged, comes again later
		}
	}
}

// sleep waits d; false when the subscription or its client closed meanwhile.
func (s *Subscription) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Subscription) duplicate(env *envelope.Envelope) (bool, error) {
	last, ok, err := s.c.cfg.Dedup.Last(s.subject)
	if err != nil || !ok {
		return false, err
	}
	if CoordinateOf(env).Compare(last) <= 0 {
		s.c.log.WithFields(logrus.Fields{"subject": s.subject, "id": env.ID, "last": last.String()}).Debug("duplicate dropped")
		return true, nil
	}
	return false, nil
}

// call runs the handler, turning a panic into an error.
func (s *Subscription) call(env *envelope.Envelope, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return s.handle(s.ctx, env, raw)
}
