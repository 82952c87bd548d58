package mq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
)

// Publish sends msgs in order and returns nil only when the stream
// acknowledged every one of them (an acknowledgement of a duplicate counts).
// An empty msgs returns nil without contacting the broker. Every message
// needs an ID (see Send).
//
// It fails, without waiting for the remaining acknowledgements, with a
// *PublishError naming the subject and id of the first message that failed
// or is still unacknowledged: wrapping ErrTooLarge for a message larger than
// the server's max_payload or the stream's max message size; ErrRejected
// for a message the broker can never accept (no ID, an invalid subject, or
// a subject none of JetStreamOptions.Subjects matches); ErrChainBroken when
// the stream refused it because the message before it is not the stream's
// last; ErrConnectionLost when the connection dropped or the server is
// unreachable (then it fails at once); ctx.Err() when ctx is done; or the
// broker's error (including no acknowledgement within AckTimeout). After
// Close it fails with ErrClosed. In every failure the stream holds an
// in-order prefix of msgs (possibly empty) and nothing after it.
func (j *JetStream) Publish(ctx context.Context, msgs []Message) error {
	err := sendAndWait(ctx, j, msgs)
	if err != nil {
		j.Resume() // the caller has the failure in hand
	}
	return err
}

// Resume implements Resumer: the next Send starts a new chain from what
// the stream holds.
func (j *JetStream) Resume() { j.chain.resume() }

// Send implements AsyncPublisher: it publishes msgs in order after every
// earlier Send and returns once they are handed to the connection (or the
// sending failed: Wait then reports why).
//
// Every message carries its ID as Nats-Msg-Id and names the message sent
// before it: the first message of a chain (the first ever, or the first
// after Resume) with Nats-Expected-Last-Sequence (the stream's last
// sequence, read then), each later one with Nats-Expected-Last-Msg-Id. So
// the stream refuses a message unless the one sent before it is its last
// message: once one message is refused, every message sent behind it is
// refused too, until the caller calls Resume, and the stream never holds a
// later message without an earlier one.
// The server checks Nats-Msg-Id de-duplication before Nats-Expected-Last-Msg-Id,
// so a replay of messages the stream holds as its newest is acknowledged as
// duplicates and the chain goes on after them; messages the stream
// acknowledged as duplicates are not sent again at the start of the next
// chain.
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
		j.chain.broken()
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		return nil, &PublishError{Subject: msgs[0].Subject, ID: msgs[0].ID, Err: err}
	}
	p := j.send(ctx, c, msgs)
	if p.err != nil {
		j.chain.broken()
	}
	return p, nil
}

// jsChain is the publisher's side of the order the stream enforces (see
// Send). Send updates it under the call gate; Wait reports failures and
// records duplicates from another goroutine, hence the mutex.
type jsChain struct {
	mu    sync.Mutex
	state chainState
	// prevID is the id of the last message sent in this chain; "" right
	// after anchoring, when the next message expects anchorSeq instead.
	prevID    string
	anchorSeq uint64
	// stored holds ids the stream acknowledged as duplicates: it already
	// has them, so the next chain does not start by sending them again.
	stored map[string]struct{}
}

// chainState says how the next message is chained.
type chainState int

const (
	// chainNew: nothing sent yet, or the caller resumed after a failure
	// (Resume); the next Send reads the stream's last sequence first.
	chainNew chainState = iota
	// chainOK: each message expects the one sent before it.
	chainOK
	// chainBroken: a message failed and the caller has not resumed; what
	// it sends meanwhile expects a message the stream does not have, so
	// the broker refuses all of it.
	chainBroken
)

// brokenLink is what messages sent on a broken chain expect as the
// stream's last message id: no message has it.
const brokenLink = "!dbsync: sent after a failed message"

// jsStoredMax bounds jsChain.stored.
const jsStoredMax = 1 << 16

// broken records a failed message: nothing sent after it may be stored.
func (ch *jsChain) broken() {
	ch.mu.Lock()
	if ch.state == chainOK {
		ch.state, ch.prevID = chainBroken, brokenLink
	}
	ch.mu.Unlock()
}

// resume lets the next Send start a new chain from what the stream holds.
func (ch *jsChain) resume() {
	ch.mu.Lock()
	ch.state = chainNew
	ch.mu.Unlock()
}

func (ch *jsChain) needsAnchor() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.state == chainNew
}

func (ch *jsChain) anchor(seq uint64) {
	ch.mu.Lock()
	ch.state, ch.prevID, ch.anchorSeq = chainOK, "", seq
	ch.mu.Unlock()
}

func (ch *jsChain) duplicate(id string) {
	ch.mu.Lock()
	if ch.stored == nil || len(ch.stored) >= jsStoredMax {
		ch.stored = map[string]struct{}{}
	}
	ch.stored[id] = struct{}{}
	ch.mu.Unlock()
}

// next returns the header of message id in the chain, or skip when the
// chain has not sent anything yet and the stream is known to hold id.
func (ch *jsChain) next(id string) (hdr nats.Header, skip bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.prevID == "" {
		if _, ok := ch.stored[id]; ok {
			delete(ch.stored, id)
			return nil, true
		}
		hdr = nats.Header{jetstream.MsgIDHeader: {id}, jetstream.ExpectedLastSeqHeader: {strconv.FormatUint(ch.anchorSeq, 10)}}
	} else {
		hdr = nats.Header{jetstream.MsgIDHeader: {id}, jetstream.ExpectedLastMsgIDHeader: {ch.prevID}}
	}
	ch.prevID = id
	return hdr, false
}

// checkMessage returns nil when m can be sent: it has an ID (the chain
// needs it), its subject is one of the stream's and it fits the broker's
// size limits.
func (j *JetStream) checkMessage(m *Message) error {
	if m.ID == "" {
		return fmt.Errorf("%w: the message has no ID (JetStream needs one per message to keep the stream in order)", ErrRejected)
	}
	if err := j.checkMsgSubject(m.Subject); err != nil {
		return err
	}
	return j.CheckSize(m)
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

// waitLeftovers waits until at most max acknowledgements of earlier
// batches (awaited by their Wait, or abandoned) are pending: MaxInflight
// bounds what is in flight across batches, and 0 lets a new chain read the
// stream's last sequence only once nothing sent before can still be
// stored.
func (j *JetStream) waitLeftovers(ctx context.Context, c *jsConnState, first *Message, limit int) error {
	n := j.js.PublishAsyncPending()
	if n <= limit {
		return nil
	}
	j.log.WithField("pending", n).Debug("mq: waiting for acknowledgements of an earlier publish")
	// PublishAsyncComplete is not signalled on every path that clears an
	// ack, so poll as well.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for j.js.PublishAsyncPending() > limit {
		var err error
		select {
		case <-j.js.PublishAsyncComplete():
		case <-tick.C:
		case <-ctx.Done():
			err = ctx.Err()
		case <-c.lost:
			if limit == 0 {
				return nil // nothing of the old connection can be stored any more
			}
			err = fmt.Errorf("%w (%v)", ErrConnectionLost, c.cause)
		case <-j.closedCh:
			err = ErrClosed
		}
		if err != nil {
			return &PublishError{Subject: first.Subject, ID: first.ID,
				Err: fmt.Errorf("waiting for %d acknowledgements of an earlier publish: %w", j.js.PublishAsyncPending(), err)}
		}
	}
	return nil
}

// startChain reads the stream's last sequence (and its current message
// size limit) once every earlier message is settled; the next message
// expects that sequence.
func (j *JetStream) startChain(ctx context.Context, c *jsConnState, first *Message) error {
	if err := j.waitLeftovers(ctx, c, first, 0); err != nil {
		return err
	}
	info, err := j.streamInfo(ctx)
	if err != nil {
		return &PublishError{Subject: first.Subject, ID: first.ID, Err: fmt.Errorf("read the stream's last sequence: %w", err)}
	}
	j.chain.anchor(info.State.LastSeq)
	return nil
}

// jsPending is a sent batch: the futures of its messages not yet awaited.
type jsPending struct {
	j      *JetStream
	c      *jsConnState
	msgs   []Message
	window int
	// sent lists the indexes into msgs of the messages sent, in order
	// (messages the stream already held are skipped); ring holds the
	// futures of sent[acked:] at index i%window.
	sent       []int
	ring       []jetstream.PubAckFuture
	acked      int
	dups, skip int
	// err is the failure that ended sending, if any.
	err error
}

// send publishes msgs in order, awaiting the oldest acknowledgement of the
// batch whenever MaxInflight of them are outstanding; Wait awaits the rest.
func (j *JetStream) send(ctx context.Context, c *jsConnState, msgs []Message) *jsPending {
	window := min(j.opts.MaxInflight, len(msgs))
	p := &jsPending{j: j, c: c, msgs: msgs, window: window, ring: make([]jetstream.PubAckFuture, window),
		sent: make([]int, 0, len(msgs))}
	var err error
	if j.chain.needsAnchor() {
		err = j.startChain(ctx, c, &msgs[0])
	} else {
		err = j.waitLeftovers(ctx, c, &msgs[0], j.opts.MaxInflight)
	}
	if err != nil {
		p.err = err
		return p
	}
	ctxDone := ctx.Done()
	for i := range msgs {
		m := &msgs[i]
		select {
		case <-ctxDone:
			err = ctx.Err()
		case <-c.lost:
			err = fmt.Errorf("%w (%v)", ErrConnectionLost, c.cause)
		case <-j.closedCh:
			err = ErrClosed
		default:
		}
		if err == nil {
			err = j.checkMessage(m)
		}
		if err != nil {
			p.err = j.failure(m, err, len(msgs), len(p.sent), p.acked)
			return p
		}
		hdr, skip := j.chain.next(m.ID)
		if skip {
			p.skip++
			continue
		}
		if len(p.sent)-p.acked == window {
			if err := p.await(ctx); err != nil {
				p.err = err
				return p
			}
		}
		f, err := j.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: hdr, Data: m.Data})
		if err != nil {
			p.err = j.failure(m, j.sendError(c, m, err), len(msgs), len(p.sent), p.acked)
			return p
		}
		p.ring[len(p.sent)%window] = f
		p.sent = append(p.sent, i)
	}
	return p
}

// await waits for the acknowledgement of the oldest sent message not yet
// acknowledged.
func (p *jsPending) await(ctx context.Context) error {
	j, c := p.j, p.c
	m := &p.msgs[p.sent[p.acked]]
	f := p.ring[p.acked%p.window]
	p.ring[p.acked%p.window] = nil
	var err error
	select {
	case pa := <-f.Ok():
		if pa.Stream != j.opts.Stream {
			err = fmt.Errorf("stored in stream %q, not %q: another stream captures this subject", pa.Stream, j.opts.Stream)
		} else if pa.Duplicate {
			p.dups++
			j.chain.duplicate(m.ID)
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
		j.chain.broken()
		return j.failure(m, err, len(p.msgs), len(p.sent), p.acked)
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
	for p.acked < len(p.sent) {
		if err := p.await(ctx); err != nil {
			p.err = err
			return err
		}
	}
	if p.dups+p.skip > 0 {
		p.j.log.WithFields(logrus.Fields{"messages": len(p.msgs), "duplicates": p.dups + p.skip}).Info("mq: stream already held some messages of the batch (replay); stored once")
	}
	return nil
}

// sendError classifies an error of PublishMsgAsync.
func (j *JetStream) sendError(c *jsConnState, m *Message, err error) error {
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w (%d bytes of data; raise the server's max_payload, or see Tables.OnUnpublishable): %w",
			ErrTooLarge, len(m.Data), err)
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
		return fmt.Errorf("%w (raise the stream's max message size, or see Tables.OnUnpublishable): %w", ErrTooLarge, err)
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jsErrCodeWrongLastMsgID || apiErr.ErrorCode == jsErrCodeWrongLastSequence):
		return fmt.Errorf("%w: %w", ErrChainBroken, err)
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jsErrCodeInsufficientResources ||
		apiErr.ErrorCode == jsErrCodeStoreFailed && strings.Contains(apiErr.Description, "maximum")):
		return failure.WithFix(fmt.Errorf("%w: stream %q: %w", ErrStreamFull, j.opts.Stream, err),
			"let consumers catch up (messages older than the stream's max age go), or raise the stream's max bytes "+
				"(nats stream edit --max-bytes) or the server's JetStream storage; the producer retries meanwhile and loses nothing")
	}
	return err
}

// JetStream API error codes (nats-server's errors.json) of a message the
// stream refused.
const (
	jsErrCodeMessageTooBig     jetstream.ErrorCode = 10054 // JSStreamMessageExceedsMaximumErr
	jsErrCodeHeaderTooBig      jetstream.ErrorCode = 10097 // JSStreamHeaderExceedsMaximumErr
	jsErrCodeWrongLastMsgID    jetstream.ErrorCode = 10070 // JSStreamWrongLastMsgIDErrF
	jsErrCodeWrongLastSequence jetstream.ErrorCode = 10071 // JSStreamWrongLastSequenceErrF
	// jsErrCodeStoreFailed with "maximum bytes/messages exceeded": a full
	// stream with discard new; jsErrCodeInsufficientResources: the
	// server's storage is used up.
	jsErrCodeStoreFailed           jetstream.ErrorCode = 10077 // JSStreamStoreFailedF
	jsErrCodeInsufficientResources jetstream.ErrorCode = 10023 // JSInsufficientResourcesErr
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
