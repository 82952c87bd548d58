package mq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/redact"
)

// JetStream publishes to a NATS JetStream stream. It implements
// MessageQueue.
//
// Every message carries its Message.ID as Nats-Msg-Id and names the message
// sent before it, so the stream refuses anything sent behind a refused
// message (see Send), and a replay of what the stream holds as its newest
// messages stores nothing twice.
//
// Connection handling: NewJetStream connects once; afterwards the nats
// client reconnects in the background forever. A Publish in progress when
// the connection drops (noticed at once for a closed TCP connection, within
// about 4 s for a server that stops answering pings) fails at once with an
// error wrapping ErrConnectionLost, because the acks of its messages in
// flight may be gone. While the client is disconnected, Publish fails at
// once with ErrConnectionLost naming the URL (nothing is buffered for later);
// after the client reconnected, Publish works again.
//
// Publish calls are serialized; a JetStream is safe for concurrent use.
type JetStream struct {
	opts JetStreamOptions
	log  logrus.FieldLogger
	nc   *nats.Conn
	js   jetstream.JetStream

	// calls serializes Publish calls.
	calls callGate
	// subjects caches the verdict of checkMsgSubject per message subject;
	// only used under calls.
	subjects map[string]error

	// chain is the order the stream enforces (see Send).
	chain jsChain
	// maxMsgSize is the stream's max message size (<= 0: none) and
	// maxPayload the server's max_payload, as last read (CheckSize).
	maxMsgSize atomic.Int64
	maxPayload atomic.Int64

	// closedCh is closed by Close.
	closedCh chan struct{}

	mu     sync.Mutex // guards conn and closed
	conn   *jsConnState
	closed bool
}

var (
	_ MessageQueue   = (*JetStream)(nil)
	_ AsyncPublisher = (*JetStream)(nil)
	_ Resumer        = (*JetStream)(nil)
)

// jsConnState is one connected span of the nats connection: from connect
// or reconnect to the next disconnect.
type jsConnState struct {
	// lost is closed at the disconnect ending this span; cause is why
	// (written before lost is closed).
	lost  chan struct{}
	once  sync.Once
	cause error
}

func newJSConnState() *jsConnState {
	return &jsConnState{lost: make(chan struct{})}
}

func (c *jsConnState) markLost(err error) bool {
	marked := false
	c.once.Do(func() {
		c.cause = err
		close(c.lost)
		marked = true
	})
	return marked
}

func (c *jsConnState) isLost() bool {
	select {
	case <-c.lost:
		return true
	default:
		return false
	}
}

// NewJetStream validates opts, applies defaults, connects to the NATS server
// and makes sure the stream exists with compatible settings.
//
// A missing stream is created with opts' subjects, storage, replicas and
// duplicate window, limits retention and discard-old. An existing stream is
// never modified: if its subjects do not cover opts.Subjects, or its storage
// or replicas differ, or its duplicate window is shorter, or it is sealed or
// does not acknowledge, NewJetStream fails with an error naming the setting,
// both values and the fix.
//
// It fails fast, naming the URL and what to check, when the server is
// unreachable or has JetStream disabled, and with a permanent error
// wrapping ErrUnauthorized (never showing the secret) when the server
// refuses opts.Auth. opts.TLS, when set, is required. ConnectTimeout (and ctx) bound
// connecting and each stream request. log receives structured entries with
// the fields url and stream; a nil log discards them.
func NewJetStream(ctx context.Context, opts JetStreamOptions, log logrus.FieldLogger) (*JetStream, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	j := &JetStream{
		opts:     opts,
		log:      log.WithFields(logrus.Fields{"url": redact.URL(opts.URL), "stream": opts.Stream}),
		calls:    newCallGate(),
		subjects: make(map[string]error),
		closedCh: make(chan struct{}),
		conn:     newJSConnState(),
	}
	if err := j.connect(ctx); err != nil {
		return nil, err
	}
	if err := j.ensureStream(ctx); err != nil {
		j.nc.Close()
		return nil, err
	}
	return j, nil
}

// connect opens the nats connection and the JetStream context.
func (j *JetStream) connect(ctx context.Context) error {
	timeout := j.opts.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if err := ctx.Err(); err != nil || timeout <= 0 {
		if err == nil {
			err = context.DeadlineExceeded
		}
		return fmt.Errorf("mq: connect to NATS at %s: %w", redact.URL(j.opts.URL), err)
	}
	security, err := SecurityOptions(j.opts.Auth, j.opts.TLS)
	if err != nil {
		return failure.Permanent(fmt.Errorf("mq: connect to NATS at %s: %w", redact.URL(j.opts.URL), err))
	}
	start := time.Now()
	nc, err := nats.Connect(j.opts.URL, append([]nats.Option{
		nats.Name("dbsync-" + j.opts.Stream),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(jsReconnectWait),
		// Nothing is buffered while disconnected: a publish then fails at
		// once instead of being sent, unacknowledged, after a reconnect.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(jsPingInterval),
		nats.MaxPingsOutstanding(jsPingMaxOut),
		// A write to a server that stopped reading fails after AckTimeout
		// instead of nats' default minute.
		nats.FlusherTimeout(j.opts.AckTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				err = errors.New("disconnected")
			}
			j.connLost(fmt.Errorf("nats disconnect: %w", err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			j.maxPayload.Store(nc.MaxPayload())
			j.mu.Lock()
			if j.conn.isLost() {
				j.conn = newJSConnState()
			}
			j.mu.Unlock()
			j.log.WithField("server", nc.ConnectedUrlRedacted()).Info("mq: reconnected to NATS")
		}),
		// nats' default prints async errors to stderr; log them.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				j.log.WithError(err).Error("mq: the NATS user may not do this: allow it to publish to the stream's subjects and $JS.API.>, and to subscribe to _INBOX.>")
				return
			}
			j.log.WithError(err).Warn("mq: nats async error")
		}),
	}, security...)...)
	if err != nil {
		err = redact.Error(err, redact.Text) // a URL in it may carry credentials
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("mq: connect to NATS at %s: %w: %w", redact.URL(j.opts.URL), ctxErr, err)
		}
		if isAuthFailure(err) {
			return failure.WithFix(AuthError(fmt.Errorf("mq: connect to NATS at %s: %w", redact.URL(j.opts.URL), err)),
				"check the credentials: the NATS server refused them (a wrong user, password, token, nkey or credentials file)")
		}
		return failure.WithFix(mark(ErrUnreachable, fmt.Errorf("mq: connect to NATS at %s: %w", redact.URL(j.opts.URL), err)),
			"check that the NATS server is running and reachable at that address")
	}
	js, err := jetstream.New(nc,
		// Publish's own window keeps at most MaxInflight acks pending, so
		// this limit of the library (which cannot honour a ctx) never
		// stalls.
		jetstream.WithPublishAsyncMaxPending(2*j.opts.MaxInflight), // headroom over our own window (waitLeftovers)
		jetstream.WithPublishAsyncTimeout(j.opts.AckTimeout),
		jetstream.WithDefaultTimeout(j.opts.ConnectTimeout),
	)
	if err != nil {
		nc.Close()
		return fmt.Errorf("mq: jetstream context for %s: %w", redact.URL(j.opts.URL), err)
	}
	j.nc, j.js = nc, js
	j.maxPayload.Store(nc.MaxPayload())
	j.log.WithFields(logrus.Fields{
		"server": nc.ConnectedUrlRedacted(),
		"took":   time.Since(start).String(),
	}).Info("mq: connected to NATS")
	return nil
}

// connLost ends the current connected span.
func (j *JetStream) connLost(err error) {
	j.mu.Lock()
	c, closed := j.conn, j.closed
	j.mu.Unlock()
	if c.markLost(err) && !closed {
		j.log.WithError(err).Warn("mq: NATS connection lost; reconnecting in the background")
	}
}

// state returns the current connected span, failing fast with
// ErrConnectionLost while the client is disconnected. When the span is lost
// but nats reports the connection as up, it waits (up to jsReconnectGrace,
// and ctx) for the reconnect callback to start a new span, then starts one
// itself.
func (j *JetStream) state(ctx context.Context) (*jsConnState, error) {
	deadline := time.Now().Add(jsReconnectGrace)
	for {
		j.mu.Lock()
		c, closed := j.conn, j.closed
		j.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		status := j.nc.Status()
		if status != nats.CONNECTED {
			cause := "not connected"
			if c.isLost() {
				cause = c.cause.Error()
			}
			return nil, fmt.Errorf("%w: NATS server at %s is unreachable (%s, %s); the client keeps reconnecting in the background",
				ErrConnectionLost, redact.URL(j.opts.URL), status, cause)
		}
		if !c.isLost() {
			return c, nil
		}
		if time.Now().After(deadline) {
			// Connected, but no reconnect callback ended the lost span
			// (it was ended by a send error, not a disconnect): start a
			// new span here.
			j.mu.Lock()
			if j.conn == c {
				j.conn = newJSConnState()
			}
			j.mu.Unlock()
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (j *JetStream) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	close(j.closedCh)
	j.mu.Unlock()
	j.nc.Close()
	j.log.Info("mq: closed NATS connection")
	return nil
}

func (j *JetStream) isClosed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.closed
}

// Connected implements Connector.
func (j *JetStream) Connected() bool {
	return !j.isClosed() && j.nc.Status() == nats.CONNECTED
}

// Ping implements Pinger: the connection reconnects by itself; Ping checks
// that the server answers a round trip.
func (j *JetStream) Ping(ctx context.Context) error {
	if j.isClosed() {
		return ErrClosed
	}
	if status := j.nc.Status(); status != nats.CONNECTED {
		return fmt.Errorf("%w: %s: %s", ErrConnectionLost, redact.URL(j.opts.URL), status)
	}
	if err := j.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConnectionLost, redact.URL(j.opts.URL), err)
	}
	return nil
}

// LastMessage implements HistoryReader: the newest message on the stream's
// subjects.
