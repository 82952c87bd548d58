package mq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/redact"
)

// Defaults applied by NewStan to zero fields of StanOptions.
const (
	DefaultStanMaxInflight    = 4096
	DefaultStanAckTimeout     = 30 * time.Second
	DefaultStanConnectTimeout = 5 * time.Second
)

// Ping settings of the NATS Streaming session: the client pings the server
// every stanPingInterval seconds and declares the connection lost after
// stanPingMaxOut unanswered pings, so a broker that stops answering is noticed
// within about (stanPingMaxOut+1)*stanPingInterval seconds. A dropped TCP
// connection is noticed at once (nats disconnect handler).
const (
	stanPingInterval = 1
	stanPingMaxOut   = 3
)

// StanOptions configures a NATS Streaming publisher.
type StanOptions struct {
	// URL of the NATS server, "nats://host:port". Required.
	URL string
	// ClusterID of the NATS Streaming server (its -cid). Required.
	ClusterID string
	// ClientID identifies this publisher to the streaming server; only
	// letters, digits, '-' and '_'. Required. Two live connections with the
	// same ClientID are refused by the server.
	ClientID string
	// MaxInflight bounds the number of published but not yet acknowledged
	// messages; Publish blocks (respecting its ctx) while the window is full.
	// Zero means DefaultStanMaxInflight.
	MaxInflight int
	// AckTimeout is how long the broker may take to acknowledge one message
	// (stan.PubAckWait). Zero means DefaultStanAckTimeout.
	AckTimeout time.Duration
	// ConnectTimeout bounds connecting (TCP dial and the streaming connect
	// request) and closing. Zero means DefaultStanConnectTimeout.
	ConnectTimeout time.Duration
	// Auth is how to authenticate to the NATS server; the zero value sends
	// no credentials.
	Auth NATSAuth
	// TLS, when not nil, requires a TLS connection checked by it.
	TLS *tls.Config
}

// withDefaults returns o with zero fields set to their defaults, or an error
// naming every invalid field.
func (o StanOptions) withDefaults() (StanOptions, error) {
	var errs []error
	if o.URL == "" {
		errs = append(errs, errors.New("mq: stan: URL is empty; set it to the NATS server address, e.g. nats://127.0.0.1:4222"))
	}
	if o.ClusterID == "" {
		errs = append(errs, errors.New("mq: stan: ClusterID is empty; set it to the streaming server's cluster id (its -cid option)"))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("mq: stan: ClientID is empty; set it to a name unique among the broker's clients"))
	} else if err := CheckStanClientID(o.ClientID); err != nil {
		errs = append(errs, fmt.Errorf("mq: stan: ClientID %q is invalid: it %w", o.ClientID, err))
	}
	if o.MaxInflight < 0 {
		errs = append(errs, fmt.Errorf("mq: stan: MaxInflight %d is negative; use a positive window or 0 for the default %d", o.MaxInflight, DefaultStanMaxInflight))
	}
	if o.AckTimeout < 0 {
		errs = append(errs, fmt.Errorf("mq: stan: AckTimeout %v is negative; use a positive duration or 0 for the default %v", o.AckTimeout, DefaultStanAckTimeout))
	}
	if err := o.Auth.check(); err != nil {
		errs = append(errs, fmt.Errorf("mq: stan: %w", err))
	}
	if o.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("mq: stan: ConnectTimeout %v is negative; use a positive duration or 0 for the default %v", o.ConnectTimeout, DefaultStanConnectTimeout))
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = DefaultStanMaxInflight
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultStanAckTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultStanConnectTimeout
	}
	return o, nil
}

// Stan publishes to NATS Streaming. It implements MessageQueue.
//
// Connection handling: the connection is made by NewStan. It counts as lost
// when its TCP connection drops (noticed at once, even if nats could
// reconnect, because acks in flight may be gone with it) or when the
// streaming server leaves 3 pings in a row, sent every second, unanswered
// (noticed within about 4 s). A Publish in progress then fails at once with
// an error wrapping ErrConnectionLost. The next Publish closes the dead
// session and connects again with the same ClientID (the server accepts it
// because the old connection no longer answers its heartbeats); if that
// fails, that Publish returns an error wrapping ErrConnectionLost that names
// the URL, and the one after it tries again. There is no background
// reconnect: reconnecting is driven by the caller's retries, which replay
// the failed batch from the last checkpoint.
//
// Publish calls are serialized; a Stan is safe for concurrent use.
type Stan struct {
	opts StanOptions
	log  logrus.FieldLogger

	// calls serializes Publish calls.
	calls callGate

	mu     sync.Mutex // guards sess and closed
	sess   *stanSession
	closed bool
	// maxPayload is the server's max_payload, as read at the last connect
	// (CheckSize).
	maxPayload atomic.Int64
}

var _ MessageQueue = (*Stan)(nil)

// stanSession is one stan connection and the state tied to it.
type stanSession struct {
	sc stan.Conn
	// sem holds one token per published, not yet acknowledged message of
	// this connection (the MaxInflight window). Ack handlers release the
	// token, also after the Publish call that sent the message returned.
	sem chan struct{}
	// lost is closed once the connection is lost; lostErr is the cause
	// (not wrapped in ErrConnectionLost).
	lost     chan struct{}
	lostOnce sync.Once
	lostErr  error
	// connected is set once the connect succeeded and closing when we close
	// the session ourselves; disconnect callbacks outside that span are
	// expected and not logged as a loss.
	connected atomic.Bool
	closing   atomic.Bool
	log       logrus.FieldLogger
}

func (ss *stanSession) markLost(err error) {
	ss.lostOnce.Do(func() {
		ss.lostErr = err
		close(ss.lost)
		if ss.connected.Load() && !ss.closing.Load() {
			ss.log.WithError(err).Warn("mq: NATS Streaming connection lost; the next publish reconnects")
		}
	})
}

func (ss *stanSession) isLost() bool {
	select {
	case <-ss.lost:
		return true
	default:
		return false
	}
}

// close closes the stan connection. Errors are expected when the
// connection is already gone and are returned for the caller to judge.
func (ss *stanSession) close() error {
	ss.closing.Store(true)
	err := ss.sc.Close()
	ss.markLost(ErrClosed)
	return err
}

// NewStan validates opts, applies defaults and connects to the NATS
// Streaming server. It fails with an error naming the URL, cluster id and
// what to check when the broker is unreachable or refuses the connection,
// and with a permanent error wrapping ErrUnauthorized (never showing the
// secret) when the NATS server refuses opts.Auth. opts.TLS, when set, is
// required.
// log receives structured entries with the fields url, cluster_id and
// client_id; a nil log discards them.
func NewStan(opts StanOptions, log logrus.FieldLogger) (*Stan, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	s := &Stan{
		opts: opts,
		log: log.WithFields(logrus.Fields{
			"url":        redact.URL(opts.URL),
			"cluster_id": opts.ClusterID,
			"client_id":  opts.ClientID,
		}),
		calls: newCallGate(),
	}
	sess, err := s.connect(context.Background())
	if err != nil {
		return nil, err
	}
	s.sess = sess
	return s, nil
}

// connect opens a new stan session. The connect timeout is shortened to
// ctx's deadline, if that is sooner; stan cannot be cancelled otherwise.
func (s *Stan) connect(ctx context.Context) (*stanSession, error) {
	timeout := s.opts.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if err := ctx.Err(); err != nil || timeout <= 0 {
		if err == nil {
			err = context.DeadlineExceeded
		}
		return nil, fmt.Errorf("mq: connect to NATS Streaming at %s (cluster id %q): %w", redact.URL(s.opts.URL), s.opts.ClusterID, err)
	}
	ss := &stanSession{
		sem:  make(chan struct{}, s.opts.MaxInflight),
		lost: make(chan struct{}),
		log:  s.log,
	}
	security, err := SecurityOptions(s.opts.Auth, s.opts.TLS)
	if err != nil {
		return nil, failure.Permanent(fmt.Errorf("mq: connect to NATS Streaming at %s: %w", redact.URL(s.opts.URL), err))
	}
	start := time.Now()
	sc, err := stan.Connect(s.opts.ClusterID, s.opts.ClientID,
		stan.NatsURL(s.opts.URL),
		stan.ConnectWait(timeout),
		stan.PubAckWait(s.opts.AckTimeout),
		// Our own window (ss.sem) is the binding limit; stan's internal
		// one, which cannot honour a ctx, never fills before ours.
		stan.MaxPubAcksInflight(s.opts.MaxInflight),
		stan.Pings(stanPingInterval, stanPingMaxOut),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) {
			ss.markLost(err)
		}),
		stan.NatsOptions(append([]nats.Option{
			nats.Name(s.opts.ClientID),
			nats.Timeout(timeout),
			// A write to a broker that stopped reading fails after
			// AckTimeout instead of nats' default minute.
			nats.FlusherTimeout(s.opts.AckTimeout),
			// stan forces endless nats reconnects; any disconnect still
			// ends this session, because acks of messages in flight may be
			// lost with it and would only surface as AckTimeout.
			// nats' default prints async errors to stderr; log them.
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				l := s.log.WithError(err)
				if ss.isLost() || ss.closing.Load() {
					l.Debug("mq: nats async error on a closed connection")
					return
				}
				if errors.Is(err, nats.ErrPermissionViolation) {
					l.Error("mq: the NATS user may not do this: allow it to publish to _STAN.> and to subscribe to _INBOX.> and _STAN.>")
					return
				}
				l.Warn("mq: nats async error")
			}),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err == nil {
					err = errors.New("disconnected")
				}
				ss.markLost(fmt.Errorf("nats disconnect: %w", err))
			}),
		}, security...)...),
	)
	if err != nil {
		err = redact.Error(err, redact.Text) // a URL in it may carry credentials
		err = fmt.Errorf("mq: connect to NATS Streaming at %s (cluster id %q, client id %q): %w",
			redact.URL(s.opts.URL), s.opts.ClusterID, s.opts.ClientID, err)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w: %w", ctxErr, err)
		}
		return nil, stanConnectError(err)
	}
	ss.sc = sc
	s.maxPayload.Store(sc.NatsConn().MaxPayload())
	ss.connected.Store(true)
	s.log.WithField("took", time.Since(start).String()).Info("mq: connected to NATS Streaming")
	return ss, nil
}

// session returns the current live session, reconnecting when the previous
// one was lost. The reconnect is bounded by ConnectTimeout and ctx's
// deadline.
func (s *Stan) session(ctx context.Context) (*stanSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.sess != nil && !s.sess.isLost() {
		return s.sess, nil
	}
	if old := s.sess; old != nil {
		s.sess = nil
		if err := old.close(); err != nil {
			s.log.WithError(err).Debug("mq: closing lost NATS Streaming session")
		}
		s.log.Info("mq: reconnecting to NATS Streaming")
	}
	sess, err := s.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: reconnect failed: %w", ErrConnectionLost, err)
	}
	s.sess = sess
	return sess, nil
}

func (s *Stan) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close closes the connection to the broker. A Publish in progress fails
// with ErrClosed; later ones too. Closing twice is safe and the second call
// returns nil. The error of closing a connection that was already lost is
// not reported.
func (s *Stan) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	sess := s.sess
	s.sess = nil
	if sess == nil {
		return nil
	}
	wasLost := sess.isLost()
	err := sess.close()
	if err != nil && !wasLost {
		return fmt.Errorf("mq: close NATS Streaming connection to %s (cluster id %q, client id %q): %w",
			redact.URL(s.opts.URL), s.opts.ClusterID, s.opts.ClientID, err)
	}
	s.log.Info("mq: closed NATS Streaming connection")
	return nil
}

// Connected implements Connector.
func (s *Stan) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.sess != nil && !s.sess.isLost()
}

// Ping implements Pinger: it reconnects a lost session (as the next Publish
// would) and checks that the server answers.
func (s *Stan) Ping(ctx context.Context) error {
	sess, err := s.session(ctx)
	if err != nil {
		return err
	}
	if err := sess.sc.NatsConn().FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConnectionLost, redact.URL(s.opts.URL), err)
	}
	return nil
}

// stanConnectError gives a failed connection its fix: the NATS server
// refused the credentials (ErrUnauthorized, permanent), no NATS server
// answered (ErrUnreachable), NATS answered but no streaming server of the
// cluster id did, or the streaming server refused the client id (another
// connection uses it). Other refusals are returned as they are.
func stanConnectError(err error) error {
	switch {
	case isAuthFailure(err):
		return failure.WithFix(AuthError(err), "check the credentials: the NATS server refused them (a wrong user, password, token, nkey or credentials file)")
	case errors.Is(err, stan.ErrConnectReqTimeout):
		return failure.WithFix(err, "the NATS server answered but no streaming server with that cluster id did; "+
			"check that the cluster id matches the streaming server's -cid")
	case strings.Contains(err.Error(), "clientID already registered"):
		return failure.WithFix(err, "another connection uses this client id: stop it, or give this one a client id of its own")
	case errors.Is(err, nats.ErrNoServers), isDialError(err):
		return failure.WithFix(mark(ErrUnreachable, err), "check that the NATS Streaming server is running and reachable at that address")
	}
	return err
}

// isDialError reports a connection that could not be made at all.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// ProbeStan connects to the NATS Streaming cluster opts.ClusterID at
// opts.URL as opts.ClientID, with opts.Auth and opts.TLS, and disconnects,
// creating nothing; opts.ConnectTimeout (default
// DefaultStanConnectTimeout) bounds each step. It fails with the errors
// NewStan would: one wrapping ErrUnauthorized when the server refuses the
// credentials, ErrUnreachable when no NATS server answers,
// stan.ErrConnectReqTimeout when NATS answers but no streaming server of
// that cluster id does.
func ProbeStan(opts StanOptions) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	security, err := SecurityOptions(opts.Auth, opts.TLS)
	if err != nil {
		return failure.Permanent(fmt.Errorf("mq: connect to NATS at %s: %w", redact.URL(opts.URL), err))
	}
	url, timeout := opts.URL, opts.ConnectTimeout
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name(opts.ClientID), nats.Timeout(timeout), nats.NoReconnect()}, security...)...)
	if err != nil {
		err = redact.Error(err, redact.Text) // a URL in it may carry credentials
		err = fmt.Errorf("cannot connect to NATS at %s: %w", redact.URL(url), err)
		if isAuthFailure(err) {
			return stanConnectError(err)
		}
		return failure.WithFix(mark(ErrUnreachable, err), "check that the NATS Streaming server is running and reachable at that address")
	}
	defer nc.Close()
	sc, err := stan.Connect(opts.ClusterID, opts.ClientID, stan.NatsConn(nc), stan.ConnectWait(timeout))
	if err != nil {
		err = redact.Error(err, redact.Text) // a URL in it may carry credentials
		return stanConnectError(fmt.Errorf("NATS at %s answered, but NATS Streaming cluster %q did not accept a connection: %w",
			redact.URL(url), opts.ClusterID, err))
	}
	return sc.Close()
}
