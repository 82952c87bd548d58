package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// rawHandler handles one decoded envelope (raw is the message as received).
// An error that isPoison reports stops retrying (Config.OnPoison).
type rawHandler func(ctx context.Context, env *envelope.Envelope, raw []byte) error

// Subscription is one subject being consumed.
type Subscription struct {
	c       *Client
	subject string
	// db and table are the subscribed table: an envelope of another one is
	// poison.
	db, table string
	handle    rawHandler
	// batch, when set, makes this a batch subscription (handle is unused).
	batch *batchHandler
	// ctx is cancelled when the subscription or its client closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex
	sub unsubscriber
	// err is what stopped the subscription (a poison message with
	// OnPoison block, a history change with StopOnHistoryChange).
	err error
}

// Subject is the broker subject consumed.
func (s *Subscription) Subject() string { return s.subject }

// Err returns nil while the subscription hands changes over, and the error
// that stopped it otherwise: a message that cannot be decoded (a
// *PoisonError, with Config.OnPoison PoisonBlock) or a change from another
// binlog history (a *HistoryChangeError, with Config.StopOnHistoryChange).
// The message stays unacknowledged, and comes again to the next
// subscription with the same ClientID. A service can fail its health check
// on it.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

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
	sub := s.sub
	s.sub = nil
	s.mu.Unlock()
	if sub == nil {
		return nil
	}
	// Outside s.mu: closing waits for the delivery goroutine, which may
	// need it (Err, stop).
	return sub.Close()
}

// start subscribes on tr, unless the subscription was stopped. A
// subscription on a previous transport (a lost NATS Streaming connection)
// is closed first, and its running delivery finished, so that one
// subject's changes are never handled twice at once.
func (s *Subscription) start(tr transport) error {
	s.mu.Lock()
	old := s.sub
	s.sub = nil
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil
	}
	sub, err := tr.subscribe(s.subject, subOptions{
		durable:    "dbsync",
		queueGroup: s.c.cfg.QueueGroup,
		fromStart:  s.c.cfg.StartAt == StartAtFirst,
		ackWait:    s.c.cfg.AckWait,
		window:     s.window(),
	}, s.deliverRun)
	if err != nil {
		return err
	}
	s.sub = sub
	return nil
}

// stop ends delivery because of err (Err returns it); the message being
// delivered stays unacknowledged.
func (s *Subscription) stop(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	sub := s.sub
	s.sub = nil
	s.mu.Unlock()
	s.c.log.WithError(err).WithField("subject", s.subject).Error("subscription stopped; Subscription.Err reports why")
	if sub != nil {
		// Not from inside the delivery callback, which Close may wait for.
		go func() { _ = sub.Close() }()
	}
}

// subscribe starts consuming db.table's subject with h, or with b when
// it is a batch subscription.
func (c *Client) subscribe(db, table string, h rawHandler, b *batchHandler) (*Subscription, error) {
	if db == "" || table == "" {
		return nil, fmt.Errorf("subscribe to %q.%q: a database and a table are needed (name them in the call, client.Config.Database or the model's TableName)", db, table)
	}
	if b != nil && c.cfg.QueueGroup != "" && c.cfg.Broker != BrokerKafka {
		return nil, fmt.Errorf("subscribe to %s.%s in batches: Config.QueueGroup %q is not supported with batches on %s (members holding batches at once would write the table's changes out of order); use one consumer per ClientID, or Subscribe", db, table, c.cfg.QueueGroup, c.cfg.Broker)
	}
	s := &Subscription{c: c, subject: c.cfg.Prefix + db + "." + table, db: db, table: table, handle: h, batch: b}
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
	c.log.WithField("subject", s.subject).Info("subscribed")
	return s, nil
}

// begin registers a delivery with the client (Close waits for it; call
// c.wg.Done when it ends); false when the client or the subscription is
// closed or stopped, and nothing may be handed over.
func (s *Subscription) begin() bool {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || s.ctx.Err() != nil || s.Err() != nil {
		return false
	}
	c.wg.Add(1)
	return true
}

// deliver runs one message through decoding, de-duplication and the
// handler. The broker hands a subscription's messages over one at a time,
// so while deliver retries a failing message, later messages of the subject
// wait.
func (s *Subscription) deliver(d delivery) {
	if !s.begin() {
		return // not acknowledged: comes again to the next client
	}
	defer s.c.wg.Done()
	c := s.c
	raw := d.Data()
	env, err := envelope.Decode(raw)
	if err == nil && (env.DB != s.db || env.Table != s.table) {
		err = &TableMismatchError{Want: s.db + "." + s.table, Got: env.DB + "." + env.Table}
	}
	if err != nil {
		s.poison(d, env, raw, err, nil)
		return
	}
	next, verdict := s.judge(d, env)
	switch verdict {
	case dropIt:
		if next != nil {
			s.done(d, env, next) // saves the count of replays, then acknowledges
			return
		}
		_ = d.Ack() // a replay of a change handed over before
		return
	case leaveIt:
		return
	}
	for attempt := 1; ; attempt++ {
		err := s.call(env, raw)
		if err == nil {
			s.done(d, env, next)
			return
		}
		if isPoison(err) {
			s.poison(d, env, raw, err, next)
			return
		}
		s.report(&DeliveryError{Subject: s.subject, ID: env.ID, Attempt: attempt, Err: err}, logrus.ErrorLevel, "delivery failed; retrying")
		if !s.sleep(c.backoff(attempt)) {
			return // closed: not acknowledged, comes again later
		}
	}
}

// partitioned is a delivery that may come from one of several partitions
// of a subject (Kafka with Key primary_key): the subject's order holds per
// partition.
type partitioned interface {
	// Partition is the delivery's partition, and whether its subject has
	// several.
	Partition() (partition int32, several bool)
}

// progressKey is the dedup store's key of a delivery's progress: the
// subject, and for a partition other than the first "subject#partition",
// since each partition is ordered on its own.
func progressKey(subject string, d delivery) string {
	if p, ok := d.(partitioned); ok {
		if n, _ := p.Partition(); n > 0 {
			return subject + "#" + strconv.Itoa(int(n))
		}
	}
	return subject
}

// isPartitioned reports whether d comes from one of several partitions
// (its envelope's prev may be in another one).
func isPartitioned(d delivery) bool {
	if p, ok := d.(partitioned); ok {
		_, several := p.Partition()
		return several
	}
	return false
}

// Outcomes of Subscription.judge.
const (
	deliverIt = iota // hand it over
	dropIt           // a replay: acknowledge it, hand nothing over
	leaveIt          // the subscription stopped or closed: leave it unacknowledged
)

// judge decides whether env is handed over; next is the progress to save
// once it was. A store that cannot be read is retried like a failing
// handler.
func (s *Subscription) judge(d delivery, env *envelope.Envelope) (next *Progress, outcome int) {
	last, ok := s.load(progressKey(s.subject, d), env.ID)
	if !ok {
		return nil, leaveIt
	}
	next, outcome, stopErr := s.judgeAgainst(last, d, env)
	if stopErr != nil {
		s.stop(stopErr)
	}
	return next, outcome
}

// load reads the progress saved under key, retrying (like a failing
// handler) while the store cannot be read; false when the subscription
// closed meanwhile. id names the change waiting for it.
func (s *Subscription) load(key, id string) (Progress, bool) {
	c := s.c
	for attempt := 1; ; attempt++ {
		last, _, err := c.cfg.Dedup.Load(s.ctx, key)
		if err == nil {
			return last, true
		}
		s.report(&DeliveryError{Subject: s.subject, ID: id, Attempt: attempt, Err: fmt.Errorf("read the dedup store: %w", err)},
			logrus.ErrorLevel, "delivery failed; retrying")
		if !s.sleep(c.backoff(attempt)) {
			return Progress{}, false
		}
	}
}

// judgeAgainst decides whether env, coming after the progress last, is
// handed over; next is the progress once it was. A change from another
// history with Config.StopOnHistoryChange is leaveIt with the error to stop
// the subscription with (the caller stops it, after handing over what came
// before).
func (s *Subscription) judgeAgainst(last Progress, d delivery, env *envelope.Envelope) (next *Progress, outcome int, stopErr error) {
	c := s.c
	coord := CoordinateOf(env)
	prev := env.Prev
	if isPartitioned(d) {
		// The change published before it is in another partition,
		// which has an order of its own: no gaps across them.
		prev = last.Last.ID()
	}
	verdict, p, why := last.judge(coord, prev)
	switch verdict {
	case duplicate:
		c.log.WithFields(logrus.Fields{"subject": s.subject, "id": env.ID, "last": last.Last.ID()}).Debug("duplicate dropped")
		if p.Replayed != last.Replayed {
			return &p, dropIt, nil // a replay counted: the count is saved
		}
		return nil, dropIt, nil
	case late:
		s.report(&LateChangeError{Subject: s.subject, ID: env.ID, Last: last.Last}, logrus.WarnLevel, "late change handed over")
	case otherHistory:
		herr := &HistoryChangeError{Subject: s.subject, Last: last.Last, Got: coord, Why: why}
		if c.cfg.StopOnHistoryChange {
			s.report(herr, logrus.ErrorLevel, "change from another binlog history")
			return nil, leaveIt, herr
		}
		s.report(herr, logrus.WarnLevel, "change from another binlog history; handing it and the rest over")
	case handOver:
		if env.Prev != "" && env.Prev != last.Last.ID() && coord.History == last.Last.History && !isPartitioned(d) && coord.Compare(last.Last) > 0 && last.Last.File != "" && c.cfg.QueueGroup == "" {
			c.log.WithFields(logrus.Fields{"subject": s.subject, "id": env.ID, "prev": env.Prev, "last": last.Last.ID()}).
				Warn("gap: the change published before this one was never handed over (refused by the broker, skipped by the producer's dead-letter policy, or discarded by the broker's limits); it is handed over if it arrives later")
		}
	}
	return &p, deliverIt, nil
}

// done saves the progress and acknowledges a change handed over; false
// when the subscription closed before the progress was saved.
func (s *Subscription) done(d delivery, env *envelope.Envelope, next *Progress) bool {
	if !s.save(progressKey(s.subject, d), *next, env.ID) {
		return false
	}
	if err := d.Ack(); err != nil {
		s.c.log.WithError(err).WithField("subject", s.subject).Warn("ack failed; the change may come again and will be dropped as a duplicate")
	}
	return true
}

// save stores p under key, retrying while the store fails; false when the
// subscription closed first. id names the change it follows.
func (s *Subscription) save(key string, p Progress, id string) bool {
	c := s.c
	for attempt := 1; ; attempt++ {
		err := c.cfg.Dedup.Save(s.ctx, key, p)
		if err == nil {
			return true
		}
		s.report(&DeliveryError{Subject: s.subject, ID: id, Attempt: attempt, Err: fmt.Errorf("save to the dedup store: %w", err)},
			logrus.ErrorLevel, "delivery failed; retrying")
		if !s.sleep(c.backoff(attempt)) {
			return false
		}
	}
}

// poison handles a message that cannot be decoded: with OnPoison block the
// subscription stops at it; with deadletter it is copied to the dead
// letter (retried until that works) and acknowledged. next, when the
// envelope was readable, is the progress to save. It reports whether
// delivery may go on past the message (false: stopped, or closed first).
func (s *Subscription) poison(d delivery, env *envelope.Envelope, raw []byte, err error, next *Progress) bool {
	c := s.c
	perr := &PoisonError{Subject: s.subject, Data: raw, Err: err}
	if env != nil {
		perr.ID = env.ID
	}
	if c.cfg.OnPoison != PoisonDeadLetter {
		s.report(perr, logrus.ErrorLevel, "message cannot be decoded; the subscription stops (Config.OnPoison block)")
		s.stop(perr)
		return false
	}
	s.report(perr, logrus.ErrorLevel, "message cannot be decoded; copying it to the dead letter (Config.OnPoison deadletter)")
	for attempt := 1; ; attempt++ {
		err := c.deadLetter(s.ctx, perr)
		if err == nil {
			break
		}
		s.report(&DeliveryError{Subject: s.subject, ID: perr.ID, Attempt: attempt, Err: fmt.Errorf("copy the undecodable message to the dead letter: %w", err)},
			logrus.ErrorLevel, "delivery failed; retrying")
		if !s.sleep(c.backoff(attempt)) {
			return false
		}
	}
	if next != nil {
		return s.done(d, env, next)
	}
	if err := d.Ack(); err != nil {
		c.log.WithError(err).WithField("subject", s.subject).Warn("ack of a dead-lettered message failed; it may come again")
	}
	return true
}

// report tells Config.OnError and the log about err.
func (s *Subscription) report(err error, level logrus.Level, msg string) {
	s.c.log.WithError(err).WithField("subject", s.subject).Log(level, msg)
	if s.c.cfg.OnError != nil {
		s.c.cfg.OnError(err)
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

// call runs the handler, turning a panic into an error.
func (s *Subscription) call(env *envelope.Envelope, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return s.handle(s.ctx, env, raw)
}

// deadLetterRecord is what the SDK publishes on Config.DeadLetterSubject
// for an undecodable message.
type deadLetterRecord struct {
	Subject  string    `json:"subject"`
	ID       string    `json:"id,omitempty"`
	ClientID string    `json:"client_id"`
	Error    string    `json:"error"`
	Data     []byte    `json:"data"`
	Time     time.Time `json:"time"`
}

// deadLetter hands p to Config.DeadLetter, or publishes it on
// Config.DeadLetterSubject.
func (c *Client) deadLetter(ctx context.Context, p *PoisonError) error {
	if c.cfg.DeadLetter != nil {
		return c.cfg.DeadLetter(ctx, p)
	}
	data, err := json.Marshal(deadLetterRecord{Subject: p.Subject, ID: p.ID, ClientID: c.cfg.ClientID, Error: p.Err.Error(), Data: p.Data, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	c.mu.Lock()
	tr := c.tr
	c.mu.Unlock()
	return tr.publish(ctx, c.cfg.DeadLetterSubject, data)
}
