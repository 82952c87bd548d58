package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/internal/failpoint"
	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/monitor"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// pipeline is one pass of reader → batcher → publisher → checkpoint, started
// from the stored checkpoint. Any failure ends the pass; the producer then
// starts a new one from the checkpoint, so a subject only ever sees an
// in-order replay, never a gap or a reordering.
type pipeline struct {
	reader  EventReader
	batcher *batcher
	queue   mq.MessageQueue
	store   storage.PositionStorager
	// lease, when not nil, must be held and confirmed before each send.
	lease storage.Lease
	log   logrus.FieldLogger
	mon   *monitor.Monitor
	// budget is the pass's memory budget; acknowledged batches give their
	// bytes back.
	budget *budget
	// snapshots, when set, reads the pass's snapshot chunks.
	snapshots *snapshotRun
}

// run streams from start until stop is closed (then it finishes the open
// transaction, publishes, saves the final checkpoint and returns nil) or
// something fails. ctx is the hard deadline: when it is done, run returns
// without waiting for acknowledgements.
func (p *pipeline) run(ctx context.Context, start position.Position, stop <-chan struct{}) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	events := make(chan binlog.Event, 64)
	batches := make(chan *batch, 1)
	cp := newCheckpointer(p.store, p.log, p.mon.Checkpointed)

	var wg sync.WaitGroup
	errs := make([]error, 5)
	spawn := func(i int, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs[i] = err
				cancel(err)
			}
		}()
	}
	spawn(0, func() error {
		defer close(events)
		return p.reader.Run(ctx, start, stop, events)
	})
	spawn(1, func() error { return p.batcher.run(ctx, events, batches) })
	spawn(2, func() error {
		defer cp.close()
		return p.publish(ctx, batches, cp, cancel)
	})
	spawn(3, func() error { return cp.run(ctx) })
	if p.snapshots != nil {
		// Ends with the reader: its chunks go nowhere after that.
		snapCtx, stopSnapshots := context.WithCancel(ctx)
		spawn(4, func() error { return p.snapshots.run(snapCtx, start.Snapshot) })
		go func() {
			select {
			case <-stop:
			case <-ctx.Done():
			}
			stopSnapshots()
		}()
	}
	wg.Wait()
	// Report the root cause, not the cancellations it caused.
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// maxBatchesInFlight bounds how many sent batches may await their
// acknowledgements at once (with an mq.AsyncPublisher).
const maxBatchesInFlight = 4

// sentBatch is a batch handed to the broker, awaiting its acknowledgements.
type sentBatch struct {
	b       *batch
	pending mq.Pending
	start   time.Time
}

// publish sends batches in order; a batch's checkpoint is offered only after
// the broker acknowledged every message of it and, by order, of all batches
// before it. With an mq.AsyncPublisher the next batches are sent while the
// acknowledgements of earlier ones are still arriving, so the broker and the
// producer work at the same time. The first failed Send or Wait ends the
// pass at once (abort): nothing is sent after it.
func (p *pipeline) publish(ctx context.Context, batches <-chan *batch, cp *checkpointer, abort context.CancelCauseFunc) error {
	sender, ok := p.queue.(mq.AsyncPublisher)
	if !ok {
		sender = syncSender{p.queue}
	}
	if r, ok := p.queue.(mq.Resumer); ok {
		// A new pass, after the held changes were read: the broker may
		// store again after what it holds.
		r.Resume()
	}
	inflight := make(chan sentBatch, maxBatchesInFlight-1)
	waited := make(chan error, 1)
	go func() {
		err := p.awaitAcks(ctx, inflight, cp)
		if err != nil {
			abort(err)
		}
		waited <- err
	}()
	var sendErr error
	for b := range batches {
		if ctx.Err() != nil {
			break // a stage failed (or the hard deadline passed): send nothing more
		}
		sb := sentBatch{b: b, pending: noPending{}, start: time.Now()}
		if len(b.msgs) > 0 {
			if p.lease != nil {
				if err := p.lease.Err(); err != nil {
					// Lost: another producer owns the checkpoint now.
					// Unconfirmed: it may; wait until the store answers.
					sendErr = fmt.Errorf("not publishing %d messages (first %s) without the checkpoint lease: %w", len(b.msgs), b.msgs[0].ID, err)
					abort(sendErr)
					break
				}
			}
			pending, err := sender.Send(ctx, b.msgs)
			if err != nil {
				p.mon.PublishFailed(err)
				sendErr = fmt.Errorf("publish %d messages (first %s): %w", len(b.msgs), b.msgs[0].ID, err)
				abort(sendErr)
				break
			}
			sb.pending = pending
			failpoint.Hit("after-publish-before-ack")
		}
		select {
		case inflight <- sb:
		case <-ctx.Done():
		}
	}
	close(inflight)
	if err := <-waited; err != nil {
		return err
	}
	return sendErr
}

// awaitAcks waits for the sent batches in order and offers their
// checkpoints; it stops at the first batch that was not acknowledged.
func (p *pipeline) awaitAcks(ctx context.Context, inflight <-chan sentBatch, cp *checkpointer) error {
	for sb := range inflight {
		if err := sb.pending.Wait(ctx); err != nil {
			if ctx.Err() == nil {
				p.mon.PublishFailed(err)
			}
			return fmt.Errorf("publish %d messages (first %s): %w", len(sb.b.msgs), sb.b.msgs[0].ID, err)
		}
		p.budget.release(sb.b.bytes)
		p.mon.BudgetUsed(p.budget.inUse())
		if p.snapshots != nil {
			p.snapshots.acknowledged(sb.b.snapshotRows)
		}
		if len(sb.b.msgs) > 0 || sb.b.transactions > 0 {
			p.mon.Published(sb.b.rows, sb.b.transactions, sb.b.eventTime, time.Since(sb.start))
		}
		if sb.b.checkpoint != nil {
			failpoint.Hit("after-ack-before-checkpoint")
			cp.offer(*sb.b.checkpoint)
		}
	}
	return nil
}

// syncSender adapts a MessageQueue without AsyncPublisher: Send publishes
// and waits.
type syncSender struct{ q mq.MessageQueue }

func (s syncSender) Send(ctx context.Context, msgs []mq.Message) (mq.Pending, error) {
	return errPending{s.q.Publish(ctx, msgs)}, nil
}

type errPending struct{ err error }

func (e errPending) Wait(context.Context) error { return e.err }

// noPending is the Pending of a batch holding only a checkpoint.
type noPending struct{}

func (noPending) Wait(context.Context) error { return nil }

// checkpointer saves the newest offered position, coalescing offers that
// arrive while a save is in progress (a save costs an fsync or a round trip).
type checkpointer struct {
	store  storage.PositionStorager
	log    logrus.FieldLogger
	notify chan struct{}
	done   chan struct{}
	saved  func(position.Position, error)

	mu      sync.Mutex
	pending *position.Position
}

// newCheckpointer returns a checkpointer saving to store; saved (required)
// is told about every save and its outcome.
func newCheckpointer(store storage.PositionStorager, log logrus.FieldLogger, saved func(position.Position, error)) *checkpointer {
	return &checkpointer{store: store, log: log, saved: saved, notify: make(chan struct{}, 1), done: make(chan struct{})}
}

// offer records pos as safe to save.
func (c *checkpointer) offer(pos position.Position) {
	c.mu.Lock()
	c.pending = &pos
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// close says no more offers come; run saves the last one and returns.
func (c *checkpointer) close() { close(c.done) }

// checkpointSpacing is the least time between the starts of two saves: the
// offers of a burst of small batches (single-row transactions caught up at
// once) are coalesced into a few saves a second instead of an fsync each.
// A crash replays at most that much more from the broker, de-duplicated
// there; the last offer is always saved, and at once at the stop.
const checkpointSpacing = 50 * time.Millisecond

func (c *checkpointer) run(ctx context.Context) error {
	var last time.Time
	for {
		select {
		case <-c.notify:
			if wait := checkpointSpacing - time.Since(last); wait > 0 {
				select {
				case <-time.After(wait):
				case <-c.done:
				case <-ctx.Done():
					return nil
				}
			}
			last = time.Now()
			if err := c.saveLatest(ctx); err != nil {
				return err
			}
		case <-c.done:
			return c.saveLatest(ctx)
		case <-ctx.Done():
			return nil
		}
	}
}

func (c *checkpointer) saveLatest(ctx context.Context) error {
	c.mu.Lock()
	pos := c.pending
	c.pending = nil
	c.mu.Unlock()
	if pos == nil {
		return nil
	}
	if err := c.store.Save(ctx, *pos); err != nil {
		c.saved(*pos, err)
		return fmt.Errorf("save checkpoint %s: %w", pos, err)
	}
	c.log.WithField("saved", pos.String()).Debug("checkpoint saved")
	c.saved(*pos, nil)
	return nil
}
