package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/redact"
)

// Timings of the JetStream transport.
const (
	// jsPollWait is how long one pull request waits for a message. It also
	// bounds how long closing a subscription takes: a pull request is never
	// abandoned (a message the server sent to an abandoned request would be
	// stuck until AckWait), so Close waits for the running one to end.
	jsPollWait = time.Second
	// jsRequestTimeout bounds JetStream API calls and acknowledgements.
	jsRequestTimeout = 5 * time.Second
	// jsRetryMin and jsRetryMax bound the wait after a failed pull.
	jsRetryMin = 250 * time.Millisecond
	jsRetryMax = 5 * time.Second
	// jsAckTimeout bounds an acknowledgement's confirmation (a healthy
	// server answers in well under a millisecond); settle repeats one that
	// got none, once the connection is up.
	jsAckTimeout = time.Second
)

// jetstreamTransport consumes from a NATS JetStream stream through one
// durable pull consumer per subscription.
type jetstreamTransport struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   string
	clientID string
	url      string
	log      logrus.FieldLogger
}

// jetstreamOptions say how to reach the stream.
type jetstreamOptions struct {
	URL      string
	Stream   string
	ClientID string
	// Security are the nats options of the credentials and TLS.
	Security []nats.Option
}

// dialJetStream connects to the NATS server at opts.URL. The connection
// reconnects forever on its own; pulls fail meanwhile and are retried. It
// fails when the server cannot be reached now.
func dialJetStream(opts jetstreamOptions, log logrus.FieldLogger) (*jetstreamTransport, error) {
	url := redact.URL(opts.URL)
	log = log.WithFields(logrus.Fields{"url": url, "stream": opts.Stream})
	nc, err := nats.Connect(opts.URL, append([]nats.Option{
		nats.Name("dbsync consumer " + opts.ClientID),
		nats.Timeout(jsRequestTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// No buffering while disconnected: a pull request flushed after
		// its Fetch gave up would take a message nobody reads (stuck until
		// AckWait), so publishes fail fast instead and the pull is retried.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.WithError(err).Warn("disconnected from NATS; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("reconnected to NATS") }),
		// Asynchronous errors (a permissions violation, a slow consumer)
		// reach the consumer's log instead of nats' default print.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				log.WithError(err).Error("the NATS user may not do this: allow it to consume from the stream (publish to $JS.API.CONSUMER.> and $JS.ACK.>, subscribe to _INBOX.>)")
				return
			}
			log.WithError(err).Warn("NATS asynchronous error")
		}),
	}, opts.Security...)...)
	if err != nil {
		err = mq.AuthError(redact.Error(err, redact.Text))
		return nil, fmt.Errorf("connect to NATS JetStream at %s as client %q: %w (%s)", url, opts.ClientID, err, connectFix(err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream at %s: %w", url, err)
	}
	log.WithField("client_id", opts.ClientID).Info("consumer connected to NATS JetStream")
	return &jetstreamTransport{nc: nc, js: js, stream: opts.Stream, clientID: opts.ClientID, url: url, log: log}, nil
}

func (t *jetstreamTransport) close() error {
	t.nc.Close()
	return nil
}

// publish implements transport: a JetStream publish, acknowledged by the
// stream that captures subject.
func (t *jetstreamTransport) publish(ctx context.Context, subject string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, jsRequestTimeout)
	defer cancel()
	if _, err := t.js.Publish(ctx, subject, data); err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			return fmt.Errorf("no JetStream stream at %s captures %s: create one for it (e.g. nats stream add DBSYNC_POISON --subjects 'dbsync_poison.>'), or set client.Config.DeadLetter: %w", t.url, subject, err)
		}
		return fmt.Errorf("publish to %s at %s: %w", subject, t.url, err)
	}
	return nil
}

// jsDurableName names the durable consumer of (clientID, subject), or of
// (queueGroup, subject) when queueGroup is set, so the group's members share
// it. The name keeps the readable parts in JetStream's allowed characters and
// ends in a hash of the exact strings, which keeps it unique when
// sanitising maps two different inputs to the same text.
func jsDurableName(clientID, queueGroup, subject string) string {
	kind, owner := "c", clientID
	if queueGroup != "" {
		kind, owner = "q", queueGroup
	}
	sum := sha256.Sum256([]byte(kind + "\x00" + owner + "\x00" + subject))
	return "dbsync_" + kind + "_" + jsSanitize(owner, 64) + "_" + jsSanitize(subject, 96) + "_" + hex.EncodeToString(sum[:8])
}

// jsSanitize keeps ASCII letters, digits, '-' and '_' and replaces anything
// else by '_', cut to at most n bytes.
func jsSanitize(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// consumerConfig is the durable pull consumer of one subscription: at most
// opts.window unacknowledged messages (one, or a batch subscription's run),
// so a subject's changes are handled in order and a failing one holds back
// the ones after it.
func (t *jetstreamTransport) consumerConfig(subject string, opts subOptions) jetstream.ConsumerConfig {
	name := jsDurableName(t.clientID, opts.queueGroup, subject)
	deliver := jetstream.DeliverNewPolicy
	if opts.fromStart {
		deliver = jetstream.DeliverAllPolicy
	}
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "dbsync consumer of " + subject,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.ackWait,
		MaxAckPending: jsMaxAckPending(opts.window),
		DeliverPolicy: deliver,
	}
}

// jsMaxAckPending is the consumer's MaxAckPending for a subscription's
// window: one message, or two runs of a batch subscription (the one being
// handled and the one pulled ahead).
func jsMaxAckPending(window int) int {
	if window <= 1 {
		return 1
	}
	return 2 * window
}

// ensureConsumer returns the durable consumer, creating it when it does
// not exist; an existing one keeps its position (and its start policy).
func (t *jetstreamTransport) ensureConsumer(cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jsRequestTimeout)
	defer cancel()
	cons, err := t.js.Consumer(ctx, t.stream, cfg.Durable)
	if err == nil {
		have := cons.CachedInfo().Config
		if have.AckWait != cfg.AckWait || have.MaxAckPending != cfg.MaxAckPending {
			// Keep the durable position, take the configured AckWait and
			// window.
			upd := have
			upd.AckWait, upd.MaxAckPending = cfg.AckWait, cfg.MaxAckPending
			cons2, uerr := t.js.UpdateConsumer(ctx, t.stream, upd)
			fields := logrus.Fields{"consumer": cfg.Durable, "ack_wait_was": have.AckWait.String(), "ack_wait": cfg.AckWait.String(),
				"max_ack_pending_was": have.MaxAckPending, "max_ack_pending": cfg.MaxAckPending}
			if uerr == nil {
				t.log.WithFields(fields).Info("updated the durable consumer's AckWait and MaxAckPending")
				return cons2, nil
			}
			t.log.WithError(uerr).WithFields(fields).Warn("could not update the durable consumer's AckWait and MaxAckPending; keeping its own")
		}
		return cons, nil
	}
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = t.js.CreateConsumer(ctx, t.stream, cfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			// Another member of the queue group created it meanwhile.
			cons, err = t.js.Consumer(ctx, t.stream, cfg.Durable)
		}
		if err == nil {
			return cons, nil
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("JetStream at %s has no stream %q: start the producer (it creates the stream) or set client.Config.Stream to the producer's JetStream.Stream: %w", t.url, t.stream, err)
	}
	return nil, fmt.Errorf("durable consumer %s on stream %q at %s: %w", cfg.Durable, t.stream, t.url, err)
}

func (t *jetstreamTransport) subscribe(subject string, opts subOptions, handle func([]delivery)) (unsubscriber, error) {
	cfg := t.consumerConfig(subject, opts)
	cons, err := t.ensureConsumer(cfg)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	s := &jsSubscription{t: t, cfg: cfg, cons: cons, handle: handle, window: max(opts.window, 1), stop: make(chan struct{}), done: make(chan struct{}),
		log: t.log.WithFields(logrus.Fields{"subject": subject, "consumer": cfg.Durable})}
	go s.run()
	return s, nil
}

// jsSubscription pulls one subject's messages, a run of up to window at a
// time, and hands each run to handle synchronously.
type jsSubscription struct {
	t      *jetstreamTransport
	cfg    jetstream.ConsumerConfig
	cons   jetstream.Consumer
	handle func([]delivery)
	window int
	log    logrus.FieldLogger

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// Close stops pulling, waits for the running pull and handler to end, and
// keeps the durable consumer (a new subscription resumes after its last
// acknowledged message).
func (s *jsSubscription) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

func (s *jsSubscription) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// run pulls until the subscription stops. A batch subscription pulls the
// next run while the handler works on the current one (its messages are
// decoded meanwhile and kept in progress until they are settled), so
// fetching and decoding overlap with the handler's writes.
func (s *jsSubscription) run() {
	defer close(s.done)
	if s.window == 1 {
		s.pullLoop(s.handleRun)
		return
	}
	runs := make(chan aheadRun, 1)
	go func() {
		defer close(runs)
		s.pullLoop(func(msgs []jetstream.Msg) { s.pullAhead(msgs, runs) })
	}()
	for r := range runs {
		if !s.stopped() {
			s.handle(r.run)
		}
		r.stopProgress()
		s.settleRun(r.run)
	}
}

// aheadRun is a run pulled while the previous one was being handled.
type aheadRun struct {
	run          []delivery
	stopProgress func()
}

// pullLoop pulls runs and gives each to onRun until the subscription
// stops, retrying failed pulls with a backoff (and creating the durable
// consumer again when it was deleted).
func (s *jsSubscription) pullLoop(onRun func([]jetstream.Msg)) {
	failures := 0
	for !s.stopped() {
		msgs, err := s.pull()
		if len(msgs) > 0 {
			onRun(msgs)
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		s.log.WithError(err).WithField("failures", failures).Warn("pulling from JetStream failed; retrying")
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			if cons, cerr := s.t.ensureConsumer(s.cfg); cerr == nil {
				s.cons = cons
				s.log.Warn("durable consumer was gone; created it again")
			} else {
				s.log.WithError(cerr).Warn("creating the durable consumer again failed")
			}
		}
		s.backoff(failures)
	}
}

// handleRun hands msgs over as one run and settles them. Messages that
// arrive after Close was called, or that the handler left unacknowledged,
// are given back at once (Nak) for the next consumer.
func (s *jsSubscription) handleRun(msgs []jetstream.Msg) {
	if s.stopped() {
		nakAll(msgs)
		return
	}
	run := make([]delivery, len(msgs))
	for i, m := range msgs {
		run[i] = &jsDelivery{m: m}
	}
	stopProgress := s.inProgress(msgs)
	s.handle(run)
	stopProgress()
	s.settleRun(run)
}

// settleRun settles a run: the messages never acknowledged are given back
// (Nak); of the acknowledged ones only the last is confirmed again when its
// acknowledgement failed (the server handles a connection's
// acknowledgements in order; one lost with the connection brings its
// message again after AckWait, dropped as a duplicate).
func (s *jsSubscription) settleRun(run []delivery) {
	for i, d := range run {
		jd := d.(*jsDelivery)
		if i == len(run)-1 || !jd.ackTried.Load() {
			s.settle(jd)
		}
	}
}

// pullAhead decodes a run pulled ahead, keeps its messages in progress and
// queues it for the handler; a run pulled after Close was called is given
// back (Nak).
func (s *jsSubscription) pullAhead(msgs []jetstream.Msg, runs chan<- aheadRun) {
	if s.stopped() {
		nakAll(msgs)
		return
	}
	run := make([]delivery, len(msgs))
	for i, m := range msgs {
		d := &jsDelivery{m: m}
		d.decode()
		run[i] = d
	}
	r := aheadRun{run: run, stopProgress: s.inProgress(msgs)}
	select {
	case runs <- r:
	case <-s.stop:
		r.stopProgress()
		nakAll(msgs)
	}
}

func nakAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

// backoff waits before the next pull after failures failed ones: while
// the connection is down, until it is back (so a restarted server is used
// at once), otherwise jsRetryMin doubling up to jsRetryMax; it returns
// early when the subscription stops.
func (s *jsSubscription) backoff(failures int) {
	wait := min(jsRetryMin<<min(failures-1, 5), jsRetryMax)
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	wasDown := false
	for {
		select {
		case <-tick.C:
		case <-s.stop:
			return
		}
		down := s.t.nc.Status() != nats.CONNECTED
		if wasDown && !down {
			return // reconnected: pull now
		}
		wasDown = wasDown || down
		if !down && time.Now().After(deadline) {
			return
		}
	}
}

// pull waits up to jsPollWait for the next messages: up to window, those
// that are there once one arrived. The error is returned with the messages
// that came before it.
func (s *jsSubscription) pull() ([]jetstream.Msg, error) {
	var msgs []jetstream.Msg
	var err error
	if s.window > 1 {
		if msgs, err = s.fetch(s.cons.FetchNoWait(s.window)); err != nil || len(msgs) > 0 {
			return msgs, err
		}
	}
	if msgs, err = s.fetch(s.cons.Fetch(1, jetstream.FetchMaxWait(jsPollWait))); len(msgs) == 0 {
		return nil, err
	}
	if s.window > 1 && !s.stopped() {
		more, _ := s.fetch(s.cons.FetchNoWait(s.window - 1))
		msgs = append(msgs, more...)
	}
	return msgs, err
}

// fetch reads the messages of one pull request; the error is the
// request's, returned with the messages that came before it.
func (s *jsSubscription) fetch(batch jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, batch.Error()
}

// inProgress tells the server every third of AckWait that msgs are still
// being handled (a handler retried with backoff included), so it is not
// sent again meanwhile (to another member of a queue group); the returned
// func stops it. AckWait can thus be short, which bounds how long a
// consumer waits for a message the server holds as delivered but lost the
// acknowledgement of (a server crash rewinds its consumer state).
func (s *jsSubscription) inProgress(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(max(s.cfg.AckWait/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, msg := range msgs {
					if err := msg.InProgress(); err != nil {
						s.log.WithError(err).Debug("telling the server the message is still being handled failed")
					}
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// settle makes sure the server learns the outcome of a handed-over message.
// One the handler left unacknowledged is given back (Nak) for immediate
// redelivery. One whose acknowledgement failed (the connection dropped, the
// server was restarting) is acknowledged again once the connection is back,
// so the messages after it are not held back until AckWait. When the
// server is up and does not answer that acknowledgement, it does not hold
// the message as delivered (its consumer state went back in a crash): it
// sends it again, at once or after AckWait, and it is dropped as a
// duplicate.
func (s *jsSubscription) settle(d *jsDelivery) {
	if d.acked.Load() {
		return
	}
	if !d.ackTried.Load() {
		if err := d.m.Nak(); err != nil {
			s.log.WithError(err).Debug("nak of an unacknowledged message failed; it comes again after AckWait")
		}
		return
	}
	deadline := time.Now().Add(s.cfg.AckWait)
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(min(jsRetryMin<<min(attempt-1, 3), time.Second))
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return
		}
		if s.t.nc.Status() != nats.CONNECTED {
			if time.Now().After(deadline) {
				s.log.Warn("acknowledgement not sent within AckWait; the change comes again and is dropped as a duplicate")
				return
			}
			continue
		}
		err := d.Ack()
		switch {
		case err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd):
			s.log.WithField("attempt", attempt).Info("acknowledgement confirmed after a retry")
			return
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			s.log.WithError(err).Info("the server did not answer the repeated acknowledgement: it does not hold the message as delivered; pulling on (it comes again and is dropped as a duplicate)")
			return
		case time.Now().After(deadline):
			s.log.WithError(err).Warn("acknowledgement still failing; the change comes again and is dropped as a duplicate")
			return
		}
	}
}

// jsDelivery is one JetStream message being handled.
type jsDelivery struct {
	m        jetstream.Msg
	acked    atomic.Bool
	ackTried atomic.Bool
	// env and envErr are the message decoded ahead (decoded is set).
	env     *envelope.Envelope
	envErr  error
	decoded bool
}

// decode decodes the message ahead of its handling.
func (d *jsDelivery) decode() {
	d.env, d.envErr = envelope.Decode(d.m.Data())
	d.decoded = true
}

// Envelope implements predecoded.
func (d *jsDelivery) Envelope() (env *envelope.Envelope, decoded bool, err error) {
	return d.env, d.decoded, d.envErr
}

func (d *jsDelivery) Data() []byte { return d.m.Data() }

// Ack acknowledges and waits for the server to confirm it.
func (d *jsDelivery) Ack() error {
	d.ackTried.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), jsAckTimeout)
	defer cancel()
	if err := d.m.DoubleAck(ctx); err != nil {
		return err
	}
	d.acked.Store(true)
	return nil
}

// AckRun implements runAcker: every message of the run but the last is
// acknowledged without waiting, and the last one's acknowledgement is
// waited for (the server handles a connection's acknowledgements in order).
// When it fails, settle repeats each acknowledgement.
func (d *jsDelivery) AckRun(run []delivery) error {
	for _, r := range run[:len(run)-1] {
		j := r.(*jsDelivery)
		j.ackTried.Store(true)
		if err := j.m.Ack(); err != nil {
			return err
		}
	}
	if err := d.Ack(); err != nil {
		return err
	}
	for _, r := range run[:len(run)-1] {
		r.(*jsDelivery).acked.Store(true)
	}
	return nil
}
