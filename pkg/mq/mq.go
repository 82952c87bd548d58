// Package mq publishes dbsync messages to a message broker.
package mq

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbsync/dbsync/pkg/failure"
)

// Message is one envelope ready to publish.
type Message struct {
	// Subject is the broker subject (channel) the message goes to:
	// "<ProName><db>.<table>".
	Subject string
	// ID is the envelope id ("file:pos:row"), deterministic for a given
	// row change; brokers with native de-duplication use it.
	ID string
	// Data is the JSON envelope.
	Data []byte
}

// MessageQueue publishes batches of messages.
type MessageQueue interface {
	// Publish sends msgs in order. It returns nil only when the broker
	// acknowledged every message of msgs; any other outcome (a rejected
	// message, a lost connection, ctx done before every ack arrived) is an
	// error, and the caller must assume any subset of msgs was stored.
	Publish(ctx context.Context, msgs []Message) error
	// Close flushes nothing and releases the connection.
	Close() error
}

// ErrConnectionLost reports that the connection to the broker was lost (the
// TCP connection dropped or the broker stopped answering pings) or could not
// be re-established. Messages of the failed Publish call may or may not have
// been stored; the caller replays them.
var ErrConnectionLost = errors.New("mq: broker connection lost")

// ErrRejected reports a message the broker can never accept (an invalid
// subject, no id); retrying cannot help: it is permanent
// (failure.IsPermanent).
var ErrRejected = failure.Permanent(errors.New("mq: the broker cannot accept this message"))

// ErrTooLarge reports a message larger than the broker accepts (its
// max_payload, or a stream's max message size). Retrying the same message
// cannot help; the producer's per-table policy (Tables.OnUnpublishable)
// decides what happens to it, found before sending through SizeChecker.
var ErrTooLarge = errors.New("mq: message larger than the broker accepts")

// ErrStreamFull reports a message the broker refused because its stream, or
// its storage, is full. Nothing was lost: the caller retries later, once
// messages aged out or the limit was raised.
var ErrStreamFull = errors.New("mq: the broker's stream or storage is full")

// ErrChainBroken reports a message the broker refused because the message
// sent before it is not the newest it holds: an earlier message was refused
// or lost, or something else wrote to the stream. Nothing behind it was
// stored; a new pass starts a new chain from what the broker holds.
var ErrChainBroken = errors.New("mq: the broker refused the message because the one sent before it is not its newest")

// ErrUnreachable reports a broker that could not be reached: nothing
// answers at its address, or the connection was refused.
var ErrUnreachable = errors.New("mq: the broker cannot be reached")

// ErrNoJetStream reports a NATS server that answers but has no JetStream
// for the account.
var ErrNoJetStream = errors.New("mq: JetStream is not enabled for the account")

// ErrClosed reports a Publish on a MessageQueue that was closed.
var ErrClosed = errors.New("mq: message queue is closed")

// PublishError reports the message of a batch whose publish failed: the
// broker rejected it, its acknowledgement did not arrive in time, or it could
// not be sent. Err is the cause (errors.Is/As see through PublishError).
type PublishError struct {
	// Subject and ID identify the message that failed.
	Subject string
	ID      string
	// Err is the underlying failure.
	Err error
}

// Error names the subject and message id and the cause.
func (e *PublishError) Error() string {
	return fmt.Sprintf("mq: publish of message %q on subject %q failed: %v", e.ID, e.Subject, e.Err)
}

// Unwrap returns the cause.
func (e *PublishError) Unwrap() error { return e.Err }

// callGate serializes Publish calls; a channel, so waiting honours ctx.
type callGate chan struct{}

func newCallGate() callGate { return make(callGate, 1) }

// enter waits for the gate (or ctx) before a publish of n messages; leave
// must follow a nil return.
func (g callGate) enter(ctx context.Context, n int) error {
	select {
	case g <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("mq: publish of %d messages: waiting for a concurrent publish: %w", n, ctx.Err())
	}
	if err := ctx.Err(); err != nil {
		<-g
		return fmt.Errorf("mq: publish of %d messages: %w", n, err)
	}
	return nil
}

func (g callGate) leave() { <-g }

// Pinger is implemented by message queues that can report whether their
// broker connection works.
type Pinger interface {
	// Ping returns nil when the broker answers, reconnecting first if the
	// connection was lost; otherwise an error wrapping ErrConnectionLost.
	Ping(ctx context.Context) error
}

// Pending is a sent batch whose acknowledgements may still be arriving.
type Pending interface {
	// Wait returns nil once the broker acknowledged every message of the
	// batch, and otherwise the error Publish would have returned.
	Wait(ctx context.Context) error
}

// AsyncPublisher is implemented by message queues that can have several
// batches in flight. Send hands msgs to the connection in order, after
// everything sent before, and returns without waiting for the
// acknowledgements; Publish is Send followed by Wait.
type AsyncPublisher interface {
	Send(ctx context.Context, msgs []Message) (Pending, error)
}

// Resumer is implemented by message queues that keep what they store in
// the order it was sent (JetStream): after a message fails, they store
// nothing sent behind it (those Sends fail with ErrChainBroken) until the
// caller, having seen the failure, calls Resume. Publish resumes by itself
// after it failed.
type Resumer interface {
	// Resume lets the next Send be stored again, after what the broker
	// holds now.
	Resume()
}

// StoredMessage is a message as the broker holds it.
type StoredMessage struct {
	Subject string
	// ID is the message's id (Message.ID when it was published by a
	// MessageQueue).
	ID   string
	Data []byte
	// Sequence is the broker's sequence number of the message.
	Sequence uint64
}

// HistoryReader is implemented by message queues that can show what they
// already hold.
type HistoryReader interface {
	// LastMessage returns the newest message the queue's stream holds,
	// whoever wrote it (found is false when it holds none).
	LastMessage(ctx context.Context) (m StoredMessage, found bool, err error)
}

// HistoryScanner is implemented by message queues that can read what they
// hold backwards, message by message, in the order it was stored.
type HistoryScanner interface {
	// MessageBefore returns the newest message stored below sequence
	// seq (found is false when there is none).
	MessageBefore(ctx context.Context, seq uint64) (m StoredMessage, found bool, err error)
}

// SizeChecker is implemented by message queues that know the largest
// message their broker accepts.
type SizeChecker interface {
	// CheckSize returns nil when m fits, else an error wrapping
	// ErrTooLarge that names m's size and the limit.
	CheckSize(m *Message) error
}

// Connector is implemented by message queues that can tell, without a
// round trip, that their broker connection is down.
type Connector interface {
	// Connected reports false while the connection is known to be lost.
	Connected() bool
}

// sendAndWait is Publish for an AsyncPublisher: Send, then Wait.
func sendAndWait(ctx context.Context, s AsyncPublisher, msgs []Message) error {
	p, err := s.Send(ctx, msgs)
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}

// marked is an error that reads as err but also matches sentinel with
// errors.Is, so a message does not repeat the sentinel's text.
type marked struct {
	sentinel error
	err      error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.sentinel, m.err} }

// mark returns err, additionally matching sentinel with errors.Is.
func mark(sentinel, err error) error { return &marked{sentinel: sentinel, err: err} }

// donePending is the Pending of a batch with nothing left to wait for.
type donePending struct{}

func (donePending) Wait(context.Context) error { return nil }
