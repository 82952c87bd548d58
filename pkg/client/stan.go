package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/redact"
)

// stanTransport consumes from NATS Streaming.
type stanTransport struct {
	conn stan.Conn
}

// stanOptions say how to reach NATS Streaming.
type stanOptions struct {
	URL       string
	ClusterID string
	ClientID  string
	// Security are the nats options of the credentials and TLS.
	Security []nats.Option
}

// dialStan connects to NATS Streaming; onLost is told when the connection
// is lost for good.
func dialStan(opts stanOptions, onLost func(error), log logrus.FieldLogger) (*stanTransport, error) {
	url := redact.URL(opts.URL)
	conn, err := stan.Connect(opts.ClusterID, opts.ClientID,
		stan.NatsURL(opts.URL),
		stan.ConnectWait(5*time.Second),
		stan.Pings(1, 5),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { onLost(err) }),
		stan.NatsOptions(opts.Security...))
	if err != nil {
		err = mq.AuthError(redact.Error(err, redact.Text))
		fix := "check Config.Host/Port/ClusterID; a ClientID must not be used by two running consumers"
		if errors.Is(err, ErrUnauthorized) {
			fix = connectFix(err)
		}
		return nil, fmt.Errorf("connect to NATS Streaming at %s (cluster %q) as client %q: %w (%s)",
			url, opts.ClusterID, opts.ClientID, err, fix)
	}
	log.WithFields(logrus.Fields{"url": url, "cluster_id": opts.ClusterID, "client_id": opts.ClientID}).Info("consumer connected to NATS Streaming")
	return &stanTransport{conn: conn}, nil
}

// stanSub is one NATS Streaming subscription.
type stanSub struct {
	sub stan.Subscription
	// closed is set by Close: acknowledgements are not retried any more.
	closed  atomic.Bool
	ackWait time.Duration
	// runs gathers a batch subscription's messages (nil for one at a time).
	runs *stanRuns
}

// Close implements unsubscriber.
func (s *stanSub) Close() error {
	s.closed.Store(true)
	err := s.sub.Close()
	if s.runs != nil {
		s.runs.close()
	}
	return err
}

type stanDelivery struct {
	s *stanSub
	m *stan.Msg
}

func (d stanDelivery) Data() []byte { return d.m.Data }

// Abandoned implements abandoner: the subscription was closed (the
// connection was lost and a new subscription takes the messages).
func (d stanDelivery) Abandoned() bool { return d.s.closed.Load() }

// Ack sends the acknowledgement, again and again while the connection is
// down (NATS Streaming acknowledgements are not buffered), for up to
// AckWait: a lost acknowledgement would hold the subject's next messages
// back until the server sends this one again.
func (d stanDelivery) Ack() error {
	deadline := time.Now().Add(d.s.ackWait)
	wait := 50 * time.Millisecond
	for {
		err := d.m.Ack()
		if err == nil {
			return nil
		}
		if d.s.closed.Load() || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

func (t *stanTransport) subscribe(subject string, opts subOptions, handle func([]delivery)) (unsubscriber, error) {
	window := max(opts.window, 1)
	so := []stan.SubscriptionOption{
		stan.DurableName(opts.durable),
		stan.SetManualAckMode(),
		stan.MaxInflight(window),
		stan.AckWait(opts.ackWait),
	}
	if opts.fromStart {
		so = append(so, stan.DeliverAllAvailable())
	}
	s := &stanSub{ackWait: opts.ackWait}
	cb := func(m *stan.Msg) { handle([]delivery{stanDelivery{s: s, m: m}}) }
	if window > 1 {
		r := newStanRuns(s, window, handle)
		s.runs = r
		cb = r.receive
	}
	var err error
	if opts.queueGroup != "" {
		s.sub, err = t.conn.QueueSubscribe(subject, opts.queueGroup, cb, so...)
	} else {
		s.sub, err = t.conn.Subscribe(subject, cb, so...)
	}
	if err != nil {
		if s.runs != nil {
			s.runs.close()
		}
		return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	return s, nil
}

// stanRuns gathers a batch subscription's messages into runs: the server
// sends up to window unacknowledged messages, the callback queues them, and
// one goroutine hands over what is queued, up to window at a time. A
// message the server sends again while it is still queued or in the run
// being handled (its AckWait passed meanwhile) is dropped; any other one is
// handed over (the dedup drops and acknowledges a replay).
type stanRuns struct {
	s      *stanSub
	window int
	handle func([]delivery)
	queue  chan *stan.Msg
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu sync.Mutex
	// held are the sequences queued or being handled.
	held map[uint64]bool
}

func newStanRuns(s *stanSub, window int, handle func([]delivery)) *stanRuns {
	r := &stanRuns{s: s, window: window, handle: handle, queue: make(chan *stan.Msg, window),
		stop: make(chan struct{}), done: make(chan struct{}), held: map[uint64]bool{}}
	go r.run()
	return r
}

// receive is the subscription's callback (one goroutine per subscription,
// in the server's order).
func (r *stanRuns) receive(m *stan.Msg) {
	r.mu.Lock()
	if r.held[m.Sequence] {
		r.mu.Unlock()
		return // sent again while queued or being handled
	}
	r.held[m.Sequence] = true
	r.mu.Unlock()
	select {
	case r.queue <- m:
	case <-r.stop:
	}
}

func (r *stanRuns) run() {
	defer close(r.done)
	for {
		var m *stan.Msg
		select {
		case m = <-r.queue:
		case <-r.stop:
			return
		}
		msgs := []*stan.Msg{m}
	more:
		for len(msgs) < r.window {
			select {
			case m = <-r.queue:
				msgs = append(msgs, m)
			default:
				break more
			}
		}
		run := make([]delivery, len(msgs))
		for i, m := range msgs {
			run[i] = stanDelivery{s: r.s, m: m}
		}
		r.handle(run)
		r.mu.Lock()
		for _, m := range msgs {
			delete(r.held, m.Sequence)
		}
		r.mu.Unlock()
	}
}

// close stops handing runs over and waits for the running one.
func (r *stanRuns) close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

func (t *stanTransport) close() error { return t.conn.Close() }

// publish implements transport; NATS Streaming's publish takes no ctx and
// waits for the server's acknowledgement (its own timeout).
func (t *stanTransport) publish(_ context.Context, subject string, data []byte) error {
	if err := t.conn.Publish(subject, data); err != nil {
		return fmt.Errorf("publish to NATS Streaming channel %s: %w", subject, err)
	}
	return nil
}
