package client

import (
	"context"
	"fmt"
	"reflect"
	"runtime/debug"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// DefaultBatchMaxChanges is BatchOptions.MaxChanges' default.
const DefaultBatchMaxChanges = 500

// BatchOptions say how a batch subscription gathers changes.
type BatchOptions struct {
	// MaxChanges bounds the changes of one batch (default
	// DefaultBatchMaxChanges). A batch holds the changes that are waiting
	// when the previous batch is done, up to MaxChanges; it never waits
	// for more to come, so a lone change is handed over at once.
	MaxChanges int
}

// Batch is a run of consecutive changes of one subject (of one partition,
// on Kafka with several), in order, handed over together.
type Batch[C any] struct {
	Changes []C
	// Key is the Config.Dedup key the subscription's progress is saved
	// under, and Progress what it saves there once the handler returned
	// nil. A handler writing to a database can store Progress under Key in
	// the same transaction as the changes, and give the SDK a DedupStore
	// reading it back (Config.Dedup): after a crash anywhere the SDK then
	// finds exactly what the database holds and drops the changes already
	// written: exactly once into the database.
	Key      string
	Progress Progress
}

// batchHandler is what a batch subscription does with its changes.
type batchHandler struct {
	// max bounds a batch.
	max int
	// prepare turns an envelope into the value handed over (a Change[T]);
	// an error makes the message poison (a row that does not fit T).
	prepare func(env *envelope.Envelope) (any, error)
	// handle runs the handler on the prepared values of one batch.
	handle func(ctx context.Context, values []any, key string, p Progress) error
}

// SubscribeBatch consumes the changes of db.table (named as for Subscribe)
// in batches: the handler gets consecutive changes of the table in order,
// and they are acknowledged together once it returned nil. It follows
// Subscribe's rules otherwise: a handler error or panic (whatever the
// error) hands the same batch over again after a backoff, a duplicate is
// dropped before it reaches a batch, and a message that cannot be decoded
// (or whose row does not fit T) is handled by Config.OnPoison after the
// changes before it were handed over.
//
// With NATS JetStream and NATS Streaming a batch subscription refuses
// Config.QueueGroup: members holding batches at once would write one
// table's changes out of order (Kafka's consumer groups give each
// partition to one member).
func SubscribeBatch[T any](c *Client, db, table string, opts BatchOptions, handler func(ctx context.Context, b Batch[Change[T]]) error) (*Subscription, error) {
	t := reflect.TypeFor[T]()
	dec, err := c.decoder(t)
	if err != nil {
		return nil, err
	}
	db, table, err = c.resolveTable(t, db, table)
	if err != nil {
		return nil, err
	}
	return c.subscribe(db, table, nil, &batchHandler{
		max: opts.maxChanges(),
		prepare: func(env *envelope.Envelope) (any, error) {
			return decodeChange[T](dec, env)
		},
		handle: func(ctx context.Context, values []any, key string, p Progress) error {
			b := Batch[Change[T]]{Changes: make([]Change[T], len(values)), Key: key, Progress: p}
			for i, v := range values {
				b.Changes[i] = v.(Change[T])
			}
			return handler(ctx, b)
		},
	})
}

// SubscribeEnvelopeBatch consumes db.table as raw envelopes in batches,
// with the rules of SubscribeBatch.
func (c *Client) SubscribeEnvelopeBatch(db, table string, opts BatchOptions, handler func(ctx context.Context, b Batch[*envelope.Envelope]) error) (*Subscription, error) {
	if db == "" || table == "" {
		return nil, fmt.Errorf("SubscribeEnvelopeBatch: database and table are required, got %q.%q", db, table)
	}
	return c.subscribe(db, table, nil, &batchHandler{
		max: opts.maxChanges(),
		handle: func(ctx context.Context, values []any, key string, p Progress) error {
			b := Batch[*envelope.Envelope]{Changes: make([]*envelope.Envelope, len(values)), Key: key, Progress: p}
			for i, v := range values {
				b.Changes[i] = v.(*envelope.Envelope)
			}
			return handler(ctx, b)
		},
	})
}

func (o BatchOptions) maxChanges() int {
	if o.MaxChanges > 0 {
		return o.MaxChanges
	}
	return DefaultBatchMaxChanges
}

// window is how many unacknowledged messages the subscription holds.
func (s *Subscription) window() int {
	if s.batch != nil {
		return s.batch.max
	}
	return 1
}

// deliverRun hands over a run of messages the transport received (one at a
// time, or a batch subscription's batch).
func (s *Subscription) deliverRun(run []delivery) {
	if s.batch == nil {
		for _, d := range run {
			s.deliver(d)
		}
		return
	}
	s.deliverBatch(run)
}

// pendingBatch is a batch being gathered.
type pendingBatch struct {
	key    string
	values []any
	// firstID and lastID are the ids of the batch's first change and of
	// the last message it took (for reports).
	firstID, lastID string
	// acks are the deliveries to acknowledge once it is done: its changes
	// and the duplicates dropped among them.
	acks []delivery
	// progress is the progress after them; dirty when it is to be saved.
	progress Progress
	dirty    bool
}

// deliverBatch runs one run of messages through decoding and
// de-duplication, hands the changes over in batches (a poison message
// splits them) and acknowledges them once the handler returned nil and the
// progress was saved.
func (s *Subscription) deliverBatch(run []delivery) {
	if !s.begin() {
		return // not acknowledged: comes again to the next client
	}
	defer s.c.wg.Done()
	b := &pendingBatch{key: progressKey(s.subject, run[0])}
	loaded := false
	for _, d := range run {
		raw := d.Data()
		env, err := decodeDelivery(d)
		if err == nil && (env.DB != s.db || env.Table != s.table) {
			err = &TableMismatchError{Want: s.db + "." + s.table, Got: env.DB + "." + env.Table}
		}
		if err != nil {
			if !s.flush(b) || !s.poison(d, env, raw, err, nil) {
				return // stopped at it, or closed: nothing after it is acknowledged
			}
			continue
		}
		if !loaded {
			if b.progress, loaded = s.load(b.key, env.ID); !loaded {
				return
			}
		}
		next, verdict, stopErr := s.judgeAgainst(b.progress, d, env)
		switch verdict {
		case leaveIt:
			// The changes before it are handed over and acknowledged
			// before the subscription stops.
			s.flush(b)
			if stopErr != nil {
				s.stop(stopErr)
			}
			return
		case dropIt:
			if next != nil {
				b.progress, b.dirty = *next, true // a counted replay
			}
			b.acks = append(b.acks, d)
			b.lastID = env.ID
			continue
		}
		value := any(env)
		if s.batch.prepare != nil {
			if value, err = s.batch.prepare(env); err != nil {
				if !s.flush(b) || !s.poison(d, env, raw, err, next) {
					return
				}
				b.progress = *next
				continue
			}
		}
		if len(b.values) == 0 {
			b.firstID = env.ID
		}
		b.lastID = env.ID
		b.values = append(b.values, value)
		b.acks = append(b.acks, d)
		b.progress, b.dirty = *next, true
	}
	s.flush(b)
}

// predecoded is a delivery the transport decoded ahead of its handling.
type predecoded interface {
	// Envelope is the message decoded (and the decoding's error), when
	// decoded says it was.
	Envelope() (env *envelope.Envelope, decoded bool, err error)
}

// decodeDelivery is the delivery's envelope, decoded ahead or now.
func decodeDelivery(d delivery) (*envelope.Envelope, error) {
	if p, ok := d.(predecoded); ok {
		if env, decoded, err := p.Envelope(); decoded {
			return env, err
		}
	}
	return envelope.Decode(d.Data())
}

// flush hands the gathered changes over (again after a backoff while the
// handler fails), saves the progress and acknowledges the batch's
// messages; false when the subscription closed first (nothing is
// acknowledged then).
func (s *Subscription) flush(b *pendingBatch) bool {
	c := s.c
	for attempt := 1; len(b.values) > 0; attempt++ {
		err := s.callBatch(b)
		if err == nil {
			break
		}
		s.report(&DeliveryError{Subject: s.subject, ID: b.firstID + ".." + b.lastID, Attempt: attempt, Err: fmt.Errorf("batch of %d changes: %w", len(b.values), err)},
			logrus.ErrorLevel, "delivery failed; retrying")
		if !s.sleep(c.backoff(attempt)) || abandoned(b.acks) {
			return false
		}
	}
	if b.dirty && !s.save(b.key, b.progress, b.lastID) {
		return false
	}
	if err := ackRun(b.acks); err != nil {
		c.log.WithError(err).WithField("subject", s.subject).Warn("ack failed; the changes may come again and will be dropped as duplicates")
	}
	b.values, b.acks, b.firstID, b.lastID, b.dirty = nil, nil, "", "", false
	return true
}

// abandoner is a delivery whose subscription was replaced (a lost
// connection): handling it further would run beside the new one.
type abandoner interface {
	Abandoned() bool
}

// abandoned reports whether the deliveries' subscription was replaced; the
// broker sends them again to the new one.
func abandoned(ds []delivery) bool {
	if len(ds) == 0 {
		return false
	}
	a, ok := ds[0].(abandoner)
	return ok && a.Abandoned()
}

// callBatch runs the batch handler, turning a panic into an error.
func (s *Subscription) callBatch(b *pendingBatch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return s.batch.handle(s.ctx, b.values, b.key, b.progress)
}
