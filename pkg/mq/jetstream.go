package mq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
)

// Defaults applied by NewJetStream to zero fields of JetStreamOptions.
const (
	DefaultJetStreamStorage         = "file"
	DefaultJetStreamReplicas        = 1
	DefaultJetStreamDuplicateWindow = 2 * time.Minute
	DefaultJetStreamMaxInflight     = 4096
	DefaultJetStreamAckTimeout      = 30 * time.Second
	DefaultJetStreamConnectTimeout  = 5 * time.Second
)

// Connection settings of the JetStream publisher. The client reconnects
// forever, every jsReconnectWait (plus nats' jitter); it pings the server
// every jsPingInterval and declares the connection broken after
// jsPingMaxOut unanswered pings, so a server that stops answering is noticed
// within about (jsPingMaxOut+1)*jsPingInterval. A dropped TCP connection is
// noticed at once.
const (
	jsReconnectWait = 250 * time.Millisecond
	jsPingInterval  = time.Second
	jsPingMaxOut    = 3
	// jsReconnectGrace is how long Publish waits for the reconnect callback
	// when nats already reports the connection as re-established.
	jsReconnectGrace = time.Second
	// jsSubjectCacheMax bounds the cache of checked message subjects (one
	// entry per table).
	jsSubjectCacheMax = 1 << 14
)

// JetStreamOptions configures a NATS JetStream publisher.
type JetStreamOptions struct {
	// URL of the NATS server, "nats://host:port". Required.
	URL string
	// Stream is the name of the stream that stores the messages, e.g.
	// "DBSYNC". Required. It is created when missing.
	Stream string
	// Subjects the stream must capture, e.g. ["*.*"] or ["app.*.*"].
	// Required. Publish refuses (ErrRejected) a message whose subject none
	// of them matches.
	Subjects []string
	// Storage of a created stream, "file" or "memory". Zero means
	// DefaultJetStreamStorage.
	Storage string
	// Replicas of a created stream. Zero means DefaultJetStreamReplicas.
	Replicas int
	// DuplicateWindow is how long the stream remembers message ids
	// (Nats-Msg-Id) to drop a replayed message. Zero means
	// DefaultJetStreamDuplicateWindow.
	DuplicateWindow time.Duration
	// MaxInflight bounds the number of published but not yet acknowledged
	// messages; Publish blocks (respecting its ctx) while the window is
	// full. Zero means DefaultJetStreamMaxInflight.
	MaxInflight int
	// AckTimeout is how long the broker may take to acknowledge one
	// message. Zero means DefaultJetStreamAckTimeout.
	AckTimeout time.Duration
	// ConnectTimeout bounds connecting and each stream request of
	// NewJetStream. Zero means DefaultJetStreamConnectTimeout.
	ConnectTimeout time.Duration
}

// withDefaults returns o with zero fields set to their defaults, or an error
// naming every invalid field.
func (o JetStreamOptions) withDefaults() (JetStreamOptions, error) {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("mq: jetstream: "+format, args...))
	}
	if o.URL == "" {
		add("URL is empty; set it to the NATS server address, e.g. nats://127.0.0.1:4222")
	}
	if o.Stream == "" {
		add("Stream is empty; set it to the stream name, e.g. DBSYNC")
	} else if strings.ContainsAny(o.Stream, " \t\r\n.*>/\\") {
		add("Stream %q is not a valid stream name; use no spaces, '.', '*', '>' or slashes", o.Stream)
	}
	if len(o.Subjects) == 0 {
		add("Subjects is empty; set the subjects the stream must capture, e.g. [\"*.*\"]")
	}
	for _, s := range o.Subjects {
		if err := checkSubject(s, true); err != nil {
			add("Subjects: %q %v", s, err)
			continue
		}
		for _, ns := range jsReservedSubjects() {
			if subjectsCollide(s, ns) {
				add("Subjects: %q overlaps the server's reserved subjects %s, which a stream cannot capture; give the subjects a literal first token (the producer's subjects are ProName+\"<db>.<table>\": set ProName, e.g. \"app.\")", s, ns)
				break
			}
		}
	}
	switch o.Storage {
	case "", "file", "memory":
	default:
		add("Storage %q is invalid; use \"file\" or \"memory\"", o.Storage)
	}
	if o.Replicas < 0 {
		add("Replicas %d is negative; use 1-5 or 0 for the default %d", o.Replicas, DefaultJetStreamReplicas)
	}
	if o.DuplicateWindow < 0 {
		add("DuplicateWindow %v is negative; use a positive duration or 0 for the default %v", o.DuplicateWindow, DefaultJetStreamDuplicateWindow)
	}
	if o.MaxInflight < 0 {
		add("MaxInflight %d is negative; use a positive window or 0 for the default %d", o.MaxInflight, DefaultJetStreamMaxInflight)
	}
	if o.AckTimeout < 0 {
		add("AckTimeout %v is negative; use a positive duration or 0 for the default %v", o.AckTimeout, DefaultJetStreamAckTimeout)
	}
	if o.ConnectTimeout < 0 {
		add("ConnectTimeout %v is negative; use a positive duration or 0 for the default %v", o.ConnectTimeout, DefaultJetStreamConnectTimeout)
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	o.Subjects = append([]string(nil), o.Subjects...)
	if o.Storage == "" {
		o.Storage = DefaultJetStreamStorage
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultJetStreamReplicas
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = DefaultJetStreamDuplicateWindow
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = DefaultJetStreamMaxInflight
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultJetStreamAckTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultJetStreamConnectTimeout
	}
	return o, nil
}

// checkSubject reports why s is not a valid NATS subject: empty tokens,
// whitespace, or (unless wildcards) a '*' or '>' token. A '>' may only be
// the last token.
func checkSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("is empty")
	}
	if strings.ContainsAny(s, " \t\r\n\f\v\x00") {
		return errors.New("contains whitespace")
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return errors.New("has an empty token")
		case tok == "*" || tok == ">":
			if !wildcards {
				return fmt.Errorf("contains the wildcard %q", tok)
			}
			if tok == ">" && i != len(toks)-1 {
				return errors.New("has '>' before its last token")
			}
		}
	}
	return nil
}

// jsReservedSubjects returns the JetStream and system API subjects the
// server refuses as (acknowledged) stream subjects.
func jsReservedSubjects() []string {
	return []string{"$JS.>", "$JSC.>", "$NRG.>", "$SYS.>"}
}

// subjectsCollide reports whether some literal subject matches both
// patterns a and b.
func subjectsCollide(a, b string) bool {
	at := strings.Split(a, ".")
	bt := strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		x, y := at[i], bt[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != "*" && y != "*" && x != y {
			return false
		}
	}
	return len(at) == len(bt)
}

// subjectCovers reports whether every subject matched by sub is also
// matched by pattern (both may hold wildcards).
func subjectCovers(pattern, sub string) bool {
	p := strings.Split(pattern, ".")
	s := strings.Split(sub, ".")
	for i, tok := range p {
		if tok == ">" {
			return i < len(s)
		}
		if i >= len(s) || s[i] == ">" {
			return false
		}
		if tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(p) == len(s)
}

// JetStream publishes to a NATS JetStream stream. It implements
// MessageQueue.
//
// Every message carries its Message.ID as Nats-Msg-Id, so a replay within
// the stream's duplicate window stores nothing twice (the broker
// acknowledges the copy as a duplicate, which Publish counts as success).
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

	// closedCh is closed by Close.
	closedCh chan struct{}

	mu     sync.Mutex // guards conn and closed
	conn   *jsConnState
	closed bool
}

var _ MessageQueue = (*JetStream)(nil)

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
// unreachable or has JetStream disabled. ConnectTimeout (and ctx) bound
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
		log:      log.WithFields(logrus.Fields{"url": opts.URL, "stream": opts.Stream}),
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
		return fmt.Errorf("mq: connect to NATS at %s: %w", j.opts.URL, err)
	}
	start := time.Now()
	nc, err := nats.Connect(j.opts.URL,
		nats.Name("dbsync-"+j.opts.Stream),
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
			j.mu.Lock()
			if j.conn.isLost() {
				j.conn = newJSConnState()
			}
			j.mu.Unlock()
			j.log.WithField("server", nc.ConnectedUrlRedacted()).Info("mq: reconnected to NATS")
		}),
		// nats' default prints async errors to stderr; log them.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			j.log.WithError(err).Warn("mq: nats async error")
		}),
	)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("mq: connect to NATS at %s: %w: %w", j.opts.URL, ctxErr, err)
		}
		return fmt.Errorf("mq: connect to NATS at %s: %w; check that the NATS server is running and reachable at that address (JetStream.URL)",
			j.opts.URL, err)
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
		return fmt.Errorf("mq: jetstream context for %s: %w", j.opts.URL, err)
	}
	j.nc, j.js = nc, js
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

// streamConfig is the configuration of a stream NewJetStream creates.
func (j *JetStream) streamConfig() jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if j.opts.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:        j.opts.Stream,
		Description: "dbsync row changes",
		Subjects:    j.opts.Subjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     storage,
		Replicas:    j.opts.Replicas,
		Duplicates:  j.opts.DuplicateWindow,
	}
}

// ensureStream creates the stream or checks the existing one.
func (j *JetStream) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, j.opts.ConnectTimeout)
	defer cancel()
	st, err := j.js.Stream(ctx, j.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cfg := j.streamConfig()
		st, err = j.js.CreateStream(ctx, cfg)
		if err == nil {
			j.log.WithFields(logrus.Fields{
				"subjects": cfg.Subjects, "storage": j.opts.Storage, "replicas": cfg.Replicas,
				"duplicate_window": cfg.Duplicates.String(),
			}).Info("mq: created JetStream stream")
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return j.streamError("create", err)
		}
		// Created concurrently by someone else: check theirs.
		st, err = j.js.Stream(ctx, j.opts.Stream)
	}
	if err != nil {
		return j.streamError("look up", err)
	}
	if err := j.checkStream(st.CachedInfo().Config); err != nil {
		return err
	}
	j.log.WithField("messages", st.CachedInfo().State.Msgs).Info("mq: using existing JetStream stream")
	return nil
}

func (j *JetStream) streamError(op string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		hint = "; enable JetStream on the NATS server (nats-server -js, or a jetstream block in its config)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		hint = "; the JetStream API did not answer: check that JetStream is enabled and healthy on the server"
	}
	return fmt.Errorf("mq: %s JetStream stream %q at %s: %w%s", op, j.opts.Stream, j.opts.URL, err, hint)
}

// checkStream reports every setting of an existing stream that conflicts
// with opts.
func (j *JetStream) checkStream(cfg jetstream.StreamConfig) error {
	name := j.opts.Stream
	var errs []error
	conflict := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("mq: stream %q: "+format, append([]any{name}, args...)...))
	}
	var missing []string
	for _, want := range j.opts.Subjects {
		covered := false
		for _, have := range cfg.Subjects {
			if subjectCovers(have, want) {
				covered = true
				break
			}
		}
		if !covered {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		conflict("subjects are %q, config says %q (the subjects ProName gives), and %q are not captured; add them to the stream (e.g. nats stream edit %s --subjects ...), or use another JetStream.Stream",
			cfg.Subjects, j.opts.Subjects, missing, name)
	}
	haveStorage := "file"
	if cfg.Storage == jetstream.MemoryStorage {
		haveStorage = "memory"
	}
	if haveStorage != j.opts.Storage {
		conflict("storage is %s, config says %s (JetStream.Storage); change one, or use another JetStream.Stream",
			haveStorage, j.opts.Storage)
	}
	if have := max(cfg.Replicas, 1); have != j.opts.Replicas {
		conflict("replicas is %d, config says %d (JetStream.Replicas); change one (nats stream edit %s --replicas %d), or use another JetStream.Stream",
			have, j.opts.Replicas, name, j.opts.Replicas)
	}
	if cfg.Duplicates < j.opts.DuplicateWindow {
		conflict("duplicate window is %v, config says %v (JetStream.DuplicateWindow); a replay after a longer outage would be stored twice: raise the stream's (nats stream edit %s --dupe-window %v) or lower JetStream.DuplicateWindow",
			cfg.Duplicates, j.opts.DuplicateWindow, name, j.opts.DuplicateWindow)
	}
	if cfg.Sealed {
		conflict("is sealed and accepts no messages; use another JetStream.Stream")
	}
	if cfg.NoAck {
		conflict("does not acknowledge messages (no_ack), so delivery cannot be confirmed; use another JetStream.Stream")
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if cfg.Retention != jetstream.LimitsPolicy {
		j.log.WithField("retention", cfg.Retention.String()).Warn("mq: stream does not use limits retention; messages may be removed once consumed")
	}
	return nil
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
				ErrConnectionLost, j.opts.URL, status, cause)
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

// Publish sends msgs in order, each with the header Nats-Msg-Id set to its
// ID, keeping at most MaxInflight of them unacknowledged, and returns nil
// only when the stream acknowledged every one of them (an acknowledgement
// of a duplicate counts). A message with an empty ID is sent without the
// header and is not de-duplicated. An empty msgs returns nil without
// contacting the broker.
//
// It fails, without waiting for the remaining acknowledgements, with a
// *PublishError naming the subject and id of the first message that failed
// or is still unacknowledged: wrapping ErrRejected for a message the broker
// can never accept (larger than the server's max_payload or the stream's
// max message size, an invalid subject, or a subject none of
// JetStreamOptions.Subjects matches); wrapping ErrConnectionLost when the
// connection dropped or the server is unreachable (then it fails at once);
// wrapping ctx.Err() when ctx is done; or wrapping the broker's error
// (including no acknowledgement within AckTimeout). After Close it fails
// with ErrClosed. In every failure any subset of msgs may have been stored;
// acknowledgements arriving later are discarded.
func (j *JetStream) Publish(ctx context.Context, msgs []Message) error {
	return sendAndWait(ctx, j, msgs)
}

// Send implements AsyncPublisher: it publishes msgs in order after every
// earlier Send and returns once they are handed to the connection (or the
// sending failed: Wait then reports why).
func (j *JetStream) Send(ctx context.Context, msgs []Message) (Pending, error) {
	if len(msgs) == 0 {
		return donePending{}, nil
	}
	if err := j.calls.enter(ctx, len(msgs)); err != nil {
		return nil, err
	}
	defer j.calls.leave()
	c, err := j.state(ctx)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		return nil, &PublishError{Subject: msgs[0].Subject, ID: msgs[0].ID, Err: err}
	}
	return j.send(ctx, c, msgs), nil
}

func (j *JetStream) isClosed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.closed
}

// checkMsgSubject returns nil when subj is a literal subject matched by one
// of the configured subjects, else an error wrapping ErrRejected.
func (j *JetStream) checkMsgSubject(subj string) error {
	if err, ok := j.subjects[subj]; ok {
		return err
	}
	var err error
	if bad := checkSubject(subj, false); bad != nil {
		err = fmt.Errorf("%w: the subject %v", ErrRejected, bad)
	} else {
		matched := false
		for _, p := range j.opts.Subjects {
			if subjectCovers(p, subj) {
				matched = true
				break
			}
		}
		if !matched {
			err = fmt.Errorf("%w: the subject is not one of the stream's subjects %q (JetStream.Subjects)", ErrRejected, j.opts.Subjects)
		}
	}
	if len(j.subjects) < jsSubjectCacheMax {
		j.subjects[subj] = err
	}
	return err
}

// waitLeftovers waits until at most MaxInflight acknowledgements of
// earlier batches (awaited by their Wait, or abandoned) are pending, which
// bounds what is in flight across batches.
func (j *JetStream) waitLeftovers(ctx context.Context, c *jsConnState, first *Message) error {
	n := j.js.PublishAsyncPending()
	if n <= j.opts.MaxInflight {
		return nil
	}
	j.log.WithField("pending", n).Debug("mq: waiting for acknowledgements of an abandoned publish")
	// PublishAsyncComplete is not signalled on every path that clears an
	// ack, so poll as well.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for j.js.PublishAsyncPending() > j.opts.MaxInflight {
		var err error
		select {
		case <-j.js.PublishAsyncComplete():
		case <-tick.C:
		case <-ctx.Done():
			err = ctx.Err()
		case <-c.lost:
			err = fmt.Errorf("%w (%v)", ErrConnectionLost, c.cause)
		case <-j.closedCh:
			err = ErrClosed
		}
		if err != nil {
			return &PublishError{Subject: first.Subject, ID: first.ID,
				Err: fmt.Errorf("waiting for %d acknowledgements of an abandoned publish: %w", j.js.PublishAsyncPending(), err)}
		}
	}
	return nil
}

// jsPending is a sent batch: the futures of its messages not yet awaited.
type jsPending struct {
	j      *JetStream
	c      *jsConnState
	msgs   []Message
	window int
	// ring holds the futures of messages acked..sent-1 at index i%window.
	ring              []jetstream.PubAckFuture
	acked, sent, dups int
	// err is the failure that ended sending, if any.
	err error
}

// send publishes msgs in order, awaiting the oldest acknowledgement of the
// batch whenever MaxInflight of them are outstanding; Wait awaits the rest.
func (j *JetStream) send(ctx context.Context, c *jsConnState, msgs []Message) *jsPending {
	window := min(j.opts.MaxInflight, len(msgs))
	p := &jsPending{j: j, c: c, msgs: msgs, window: window, ring: make([]jetstream.PubAckFuture, window)}
	if err := j.waitLeftovers(ctx, c, &msgs[0]); err != nil {
		p.err = err
		return p
	}
	for i := range msgs {
		m := &msgs[i]
		if i&63 == 0 {
			var err error
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-c.lost:
				err = fmt.Errorf("%w (%v)", ErrConnectionLost, c.cause)
			case <-j.closedCh:
				err = ErrClosed
			default:
			}
			if err != nil {
				p.err = j.failure(m, err, len(msgs), p.sent, p.acked)
				return p
			}
		}
		if err := j.checkMsgSubject(m.Subject); err != nil {
			p.err = j.failure(m, err, len(msgs), p.sent, p.acked)
			return p
		}
		if p.sent-p.acked == window {
			if err := p.await(ctx); err != nil {
				p.err = err
				return p
			}
		}
		f, err := j.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Data}, jetstream.WithMsgID(m.ID))
		if err != nil {
			p.err = j.failure(m, j.sendError(c, m, err), len(msgs), p.sent, p.acked)
			return p
		}
		p.ring[i%window] = f
		p.sent++
	}
	return p
}

// await waits for the acknowledgement of msgs[acked].
func (p *jsPending) await(ctx context.Context) error {
	j, c := p.j, p.c
	m := &p.msgs[p.acked]
	f := p.ring[p.acked%p.window]
	p.ring[p.acked%p.window] = nil
	var err error
	select {
	case pa := <-f.Ok():
		if pa.Stream != j.opts.Stream {
			err = fmt.Errorf("stored in stream %q, not %q: another stream captures this subject", pa.Stream, j.opts.Stream)
		} else if pa.Duplicate {
			p.dups++
		}
	case ferr := <-f.Err():
		err = j.ackError(c, ferr)
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.lost:
		err = fmt.Errorf("%w (%v)", ErrConnectionLost, c.cause)
	case <-j.closedCh:
		err = ErrClosed
	}
	if err != nil {
		return j.failure(m, err, len(p.msgs), p.sent, p.acked)
	}
	p.acked++
	return nil
}

// Wait implements Pending.
func (p *jsPending) Wait(ctx context.Context) error {
	err := p.wait(ctx)
	if err != nil && p.j.isClosed() {
		return fmt.Errorf("%w (closed during publish: %v)", ErrClosed, err)
	}
	return err
}

func (p *jsPending) wait(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	for p.acked < p.sent {
		if err := p.await(ctx); err != nil {
			p.err = err
			return err
		}
	}
	if p.dups > 0 {
		p.j.log.WithFields(logrus.Fields{"messages": len(p.msgs), "duplicates": p.dups}).Info("mq: stream already held some messages of the batch (replay); stored once")
	}
	return nil
}

// sendError classifies an error of PublishMsgAsync.
func (j *JetStream) sendError(c *jsConnState, m *Message, err error) error {
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w (%d bytes; raise the server's max_payload, or exclude the table with Tables.Exclude): %w",
			ErrRejected, len(m.Data), err)
	case errors.Is(err, nats.ErrBadSubject):
		return fmt.Errorf("%w: %w", ErrRejected, err)
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return err
	}
	// Closed, reconnecting (nothing is buffered) or a failed write: the
	// connection is gone.
	c.markLost(err)
	return fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// ackError classifies the error of an acknowledgement future.
func (j *JetStream) ackError(c *jsConnState, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionClosed):
		c.markLost(err)
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		if c.isLost() {
			return fmt.Errorf("%w (%v): %w", ErrConnectionLost, c.cause, err)
		}
		return fmt.Errorf("no acknowledgement within %v (JetStream.AckTimeout): %w", j.opts.AckTimeout, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("no stream answered (is JetStream up, and does stream %q capture the subject?): %w", j.opts.Stream, err)
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jsErrCodeMessageTooBig || apiErr.ErrorCode == jsErrCodeHeaderTooBig):
		return fmt.Errorf("%w (raise the stream's max message size, or exclude the table with Tables.Exclude): %w", ErrRejected, err)
	}
	return err
}

// JetStream API error codes (nats-server's errors.json) of a message the
// stream can never store.
const (
	jsErrCodeMessageTooBig jetstream.ErrorCode = 10054 // JSStreamMessageExceedsMaximumErr
	jsErrCodeHeaderTooBig  jetstream.ErrorCode = 10097 // JSStreamHeaderExceedsMaximumErr
)

// failure builds the error of a failed Publish naming message m and logs
// the failures that are not the caller's doing.
func (j *JetStream) failure(m *Message, err error, total, sent, acked int) error {
	perr := &PublishError{Subject: m.Subject, ID: m.ID,
		Err: fmt.Errorf("%w (batch of %d: %d sent, %d acknowledged)", err, total, sent, acked)}
	if !errors.Is(err, ErrConnectionLost) && !errors.Is(err, ErrClosed) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		j.log.WithFields(logrus.Fields{"subject": m.Subject, "id": m.ID}).WithError(err).Error("mq: broker did not store message")
	}
	return perr
}

// Close closes the connection to the broker without waiting for pending
// acknowledgements. A Publish in progress fails with ErrClosed; later ones
// too. Closing twice is safe and the second call returns nil.
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

// Ping implements Pinger: the connection reconnects by itself; Ping checks
// that the server answers a round trip.
func (j *JetStream) Ping(ctx context.Context) error {
	if j.isClosed() {
		return ErrClosed
	}
	if err := j.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConnectionLost, j.opts.URL, err)
	}
	return nil
}

// LastMessage implements HistoryReader: the newest message on the stream's
// subjects.
func (j *JetStream) LastMessage(ctx context.Context) ([]byte, bool, error) {
	st, err := j.js.Stream(ctx, j.opts.Stream)
	if err != nil {
		return nil, false, fmt.Errorf("mq: stream %q: %w", j.opts.Stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("mq: stream %q: %w", j.opts.Stream, err)
	}
	if info.State.Msgs == 0 {
		return nil, false, nil
	}
	m, err := st.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return nil, false, fmt.Errorf("mq: stream %q: last message: %w", j.opts.Stream, err)
	}
	return m.Data, true, nil
}
