package mq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
)

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
