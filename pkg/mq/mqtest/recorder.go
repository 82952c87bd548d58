package mqtest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/dbsync/dbsync/pkg/mq"
)

// Recorder is an in-memory mq.MessageQueue, mq.AsyncPublisher and
// mq.Resumer that keeps the contract (it passes Run) and lets a test look
// inside and break it. It stores like JetStream: in order, and once a
// message is refused, nothing sent after it is stored (mq.ErrChainBroken)
// until Resume. Its methods are safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	stored []mq.Message
	sent   int
	// failAt is the number (counted from 1 over all sends) of the message
	// to refuse with failErr; 0 when none is armed.
	failAt  int
	failErr error
	// broken is set from a refused message until Resume.
	broken bool
	// held, when not nil, keeps every Wait waiting until it is closed.
	held   chan struct{}
	closed chan struct{}
}

var (
	_ mq.MessageQueue   = (*Recorder)(nil)
	_ mq.AsyncPublisher = (*Recorder)(nil)
	_ mq.Resumer        = (*Recorder)(nil)
)

// NewRecorder returns an empty, healthy Recorder.
func NewRecorder() *Recorder { return &Recorder{closed: make(chan struct{})} }

// Publish implements mq.MessageQueue: Send, then Wait, then Resume after a
// failure.
func (r *Recorder) Publish(ctx context.Context, msgs []mq.Message) error {
	p, err := r.Send(ctx, msgs)
	if err == nil {
		err = p.Wait(ctx)
	}
	if err != nil {
		r.Resume()
	}
	return err
}

// Resume implements mq.Resumer.
func (r *Recorder) Resume() {
	r.mu.Lock()
	r.broken = false
	r.mu.Unlock()
}

// Send implements mq.AsyncPublisher. It stores msgs at once (up to a refused
// one); the acknowledgement is Wait's.
func (r *Recorder) Send(ctx context.Context, msgs []mq.Message) (mq.Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mqtest: send of %d messages: %w", len(msgs), err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isClosed() {
		return nil, mq.ErrClosed
	}
	for _, m := range msgs {
		r.sent++
		var err error
		switch {
		case r.broken:
			err = mq.ErrChainBroken
		case r.sent == r.failAt:
			err, r.failAt, r.broken = r.failErr, 0, true
		case m.ID == "" || strings.ContainsAny(m.Subject, "*> \t") || m.Subject == "":
			err, r.broken = fmt.Errorf("%w: subject %q, id %q", mq.ErrRejected, m.Subject, m.ID), true
		}
		if err != nil {
			return &recorderPending{r: r, err: &mq.PublishError{Subject: m.Subject, ID: m.ID, Err: err}}, nil
		}
		r.stored = append(r.stored, m)
	}
	return &recorderPending{r: r}, nil
}

type recorderPending struct {
	r   *Recorder
	err error
}

// Wait reports the batch's outcome once the Recorder is not held.
func (p *recorderPending) Wait(ctx context.Context) error {
	r := p.r
	r.mu.Lock()
	held := r.held
	r.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-r.closed:
			return mq.ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("mqtest: waiting for acknowledgements: %w", ctx.Err())
		}
	}
	return p.err
}

// Close implements mq.MessageQueue; a held Wait returns mq.ErrClosed.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.isClosed() {
		close(r.closed)
	}
	return nil
}

func (r *Recorder) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// Messages returns every message stored so far, in order.
func (r *Recorder) Messages() []mq.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mq.Message(nil), r.stored...)
}

// Stored returns the data of the messages stored on subject, in order.
func (r *Recorder) Stored(subject string) [][]byte {
	var out [][]byte
	for _, m := range r.Messages() {
		if m.Subject == subject {
			out = append(out, m.Data)
		}
	}
	return out
}

// FailAfter makes the queue refuse, with err, the message sent after the
// next n: the n before it are stored, it and everything sent after it are
// not, until Resume.
func (r *Recorder) FailAfter(n int, err error) {
	r.mu.Lock()
	r.failAt, r.failErr = r.sent+n+1, err
	r.mu.Unlock()
}

// Hold keeps every Wait waiting (acknowledgements outstanding) until the
// returned release is called or the Recorder is closed.
func (r *Recorder) Hold() (release func()) {
	held := make(chan struct{})
	r.mu.Lock()
	r.held = held
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			if r.held == held {
				r.held = nil
			}
			r.mu.Unlock()
			close(held)
		})
	}
}
