package mq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"github.com/sirupsen/logrus"
)

// stanBatch is the state of one Publish call shared with its ack handler.
// The handler only does non-blocking operations on it, so acks arriving
// after Publish returned are harmless.
type stanBatch struct {
	sem chan struct{}
	// pending counts sent, unacknowledged messages plus one while the
	// sender is still sending; done is closed when it drops to zero.
	pending atomic.Int64
	done    chan struct{}

	failOnce sync.Once
	failed   chan struct{} // closed on the first ack error
	failGUID string        // written before failed is closed
	failErr  error
}

func (b *stanBatch) ack(guid string, err error) {
	select {
	case <-b.sem:
	default: // cannot happen: every sent message holds a token
	}
	if err != nil {
		b.failOnce.Do(func() {
			b.failGUID, b.failErr = guid, err
			close(b.failed)
		})
	}
	if b.pending.Add(-1) == 0 {
		close(b.done)
	}
}

func (b *stanBatch) hasFailed() bool {
	select {
	case <-b.failed:
		return true
	default:
		return false
	}
}

// Publish sends msgs in order, keeping at most MaxInflight of them
// unacknowledged, and returns nil only when the broker acknowledged every
// one of them. An empty msgs returns nil without contacting the broker.
//
// It fails, without waiting for the remaining acknowledgements, on the
// first rejected or timed-out message (*PublishError naming its subject and
// id), on a lost connection (ErrConnectionLost), when ctx is done (the
// error wraps ctx.Err()), or after Close (ErrClosed). In every failure any
// subset of msgs may have been stored. If the connection was lost before,
// Publish first reconnects; a failed reconnect returns an error wrapping
// ErrConnectionLost that names the URL.
func (s *Stan) Publish(ctx context.Context, msgs []Message) error {
	return sendAndWait(ctx, s, msgs)
}

// Send implements AsyncPublisher: it publishes msgs in order after every
// earlier Send and returns once they are handed to the connection (or the
// sending failed: Wait then reports why).
func (s *Stan) Send(ctx context.Context, msgs []Message) (Pending, error) {
	if len(msgs) == 0 {
		return donePending{}, nil
	}
	if err := s.calls.enter(ctx, len(msgs)); err != nil {
		return nil, err
	}
	defer s.calls.leave()
	sess, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	return s.send(ctx, sess, msgs), nil
}

// stanPending is a sent batch: what Wait needs to tell its outcome.
type stanPending struct {
	s       *Stan
	sess    *stanSession
	b       *stanBatch
	msgs    []Message
	guids   []string
	sent    int
	sendErr error
}

// send publishes msgs on sess; the outcome is the returned stanPending's.
func (s *Stan) send(ctx context.Context, sess *stanSession, msgs []Message) *stanPending {
	b := &stanBatch{
		sem:    sess.sem,
		done:   make(chan struct{}),
		failed: make(chan struct{}),
	}
	b.pending.Store(1) // the sender's reference
	handler := b.ack
	guids := make([]string, len(msgs))

	var sendErr error
	sent := 0
	ctxDone := ctx.Done()
send:
	for i := range msgs {
		m := &msgs[i]
		if b.hasFailed() || sess.isLost() || ctx.Err() != nil {
			break
		}
		if err := s.CheckSize(m); err != nil {
			sendErr = &PublishError{Subject: m.Subject, ID: m.ID, Err: err}
			break
		}
		// Take a window token; block only when the window is full.
		select {
		case b.sem <- struct{}{}:
		default:
			select {
			case b.sem <- struct{}{}:
			case <-ctxDone:
				break send
			case <-sess.lost:
				break send
			case <-b.failed:
				break send
			}
		}
		b.pending.Add(1)
		guid, err := sess.sc.PublishAsync(m.Subject, m.Data, handler)
		if err != nil {
			// stan does not call the handler for a failed PublishAsync.
			<-b.sem
			b.pending.Add(-1)
			sendErr = &PublishError{Subject: m.Subject, ID: m.ID, Err: err}
			// Only an oversized message or a bad subject is the message's
			// fault; anything else (closed, reconnecting, a failed write)
			// means the connection is gone.
			if errors.Is(err, nats.ErrMaxPayload) {
				sendErr = fmt.Errorf("%w (%d bytes of data; raise the server's max_payload, or see Tables.OnUnpublishable): %w",
					ErrTooLarge, len(m.Data), sendErr)
			} else if errors.Is(err, nats.ErrBadSubject) {
				sendErr = fmt.Errorf("%w: %w", ErrRejected, sendErr)
			} else {
				sess.markLost(err)
				sendErr = fmt.Errorf("%w: %w", ErrConnectionLost, sendErr)
			}
			break
		}
		guids[i] = guid
		sent++
	}
	if b.pending.Add(-1) == 0 {
		close(b.done)
	}
	return &stanPending{s: s, sess: sess, b: b, msgs: msgs, guids: guids, sent: sent, sendErr: sendErr}
}

// Wait implements Pending.
func (p *stanPending) Wait(ctx context.Context) error {
	err := p.wait(ctx)
	if err != nil && p.s.isClosed() {
		return fmt.Errorf("%w (closed during publish: %v)", ErrClosed, err)
	}
	return err
}

func (p *stanPending) wait(ctx context.Context) error {
	s, sess, b, msgs, guids, sent, sendErr := p.s, p.sess, p.b, p.msgs, p.guids, p.sent, p.sendErr
	ctxDone := ctx.Done()
	if sendErr == nil {
		select {
		case <-b.done:
		case <-b.failed:
		case <-ctxDone:
		case <-sess.lost:
		}
	}
	// Success only when everything was sent and acknowledged without
	// error. done closed means every handler of this call has run, so
	// hasFailed is final then.
	select {
	case <-b.done:
		if sent == len(msgs) && !b.hasFailed() {
			return nil
		}
	default:
	}
	// Failure priority: a specific rejected message, then the send error,
	// then connection loss, then ctx.
	if b.hasFailed() {
		return s.ackError(b, msgs, guids, sess)
	}
	if sendErr != nil {
		return sendErr
	}
	unacked := b.pending.Load()
	if sess.isLost() {
		return fmt.Errorf("%w (%v): publish of %d messages (first %q on %q): %d sent, %d of them unacknowledged",
			ErrConnectionLost, sess.lostErr, len(msgs), msgs[0].ID, msgs[0].Subject, sent, unacked)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mq: publish of %d messages (first %q on %q): %d sent, %d of them unacknowledged: %w",
			len(msgs), msgs[0].ID, msgs[0].Subject, sent, unacked, err)
	}
	// Unreachable: the wait above only ends on one of the cases handled.
	return fmt.Errorf("mq: publish of %d messages: %d sent, %d unacknowledged", len(msgs), sent, unacked)
}

// ackError builds the error for the first failed acknowledgement, naming
// the message it belongs to.
func (s *Stan) ackError(b *stanBatch, msgs []Message, guids []string, sess *stanSession) error {
	<-b.failed // happens-before for failGUID/failErr
	perr := &PublishError{Subject: "?", ID: "?", Err: b.failErr}
	for i, g := range guids {
		if g == b.failGUID {
			perr.Subject, perr.ID = msgs[i].Subject, msgs[i].ID
			break
		}
	}
	switch {
	case errors.Is(b.failErr, stan.ErrTimeout):
		perr.Err = fmt.Errorf("no acknowledgement within %v (AckTimeout): %w", s.opts.AckTimeout, b.failErr)
	case errors.Is(b.failErr, stan.ErrConnectionClosed):
		sess.markLost(b.failErr)
		return fmt.Errorf("%w: %w", ErrConnectionLost, perr)
	}
	if sess.isLost() {
		return fmt.Errorf("%w: %w", ErrConnectionLost, perr)
	}
	s.log.WithFields(logrus.Fields{"subject": perr.Subject, "id": perr.ID}).WithError(b.failErr).Error("mq: broker did not acknowledge message")
	return perr
}

// stanEnvelopeOverhead bounds what NATS Streaming adds around a message's
// data on the wire (its PubMsg protobuf: client id, subject, a 22-byte guid,
// the connection id and field tags).
const stanEnvelopeOverhead = 96

// CheckSize implements SizeChecker: m fits when it and the streaming
// protocol's envelope around it are within the server's max_payload.
func (s *Stan) CheckSize(m *Message) error {
	limit := s.maxPayload.Load()
	size := int64(len(m.Data) + len(m.Subject) + len(s.opts.ClientID) + stanEnvelopeOverhead)
	if size <= limit {
		return nil
	}
	return fmt.Errorf("%w: about %d bytes with the streaming envelope, over the NATS server's max_payload of %d bytes", ErrTooLarge, size, limit)
}
