package client

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/stan.go"
	"github.com/sirupsen/logrus"
)

// delivery is one message as a broker hands it over.
type delivery interface {
	Data() []byte
	// Ack tells the broker the message is done; it is not sent again.
	Ack() error
}

// subOptions say how to subscribe to one subject.
type subOptions struct {
	// durable names the subscription's stored position.
	durable string
	// queueGroup, when set, shares the subject among the group's members.
	queueGroup string
	// fromStart makes a new durable subscription begin at the first stored
	// message instead of the next new one.
	fromStart bool
	// ackWait is how long the broker waits for an Ack before sending the
	// message again.
	ackWait time.Duration
}

// transport is a broker connection the SDK consumes through. Each
// subscription hands over one message at a time (the next one only after the
// previous was acknowledged), which keeps a table's changes in order.
type transport interface {
	subscribe(subject string, opts subOptions, handle func(delivery)) (unsubscriber, error)
	// publish stores data on subject durably (the dead letter).
	publish(ctx context.Context, subject string, data []byte) error
	close() error
}

type unsubscriber interface {
	// Close stops delivery and keeps the durable position.
	Close() error
}

// stanTransport consumes from NATS Streaming.
type stanTransport struct {
	conn stan.Conn
}

func natsURL(host, port string) string {
	h := host
	if !strings.Contains(h, "://") {
		h = "nats://" + h
	}
	scheme, rest, _ := strings.Cut(h, "://")
	if _, _, err := net.SplitHostPort(rest); err == nil || port == "" {
		return h
	}
	return scheme + "://" + net.JoinHostPort(rest, port)
}

func dialStan(cfg Config, onLost func(error), log logrus.FieldLogger) (*stanTransport, error) {
	url := natsURL(cfg.Host, cfg.Port)
	conn, err := stan.Connect(cfg.ClusterID, cfg.ClientID,
		stan.NatsURL(url),
		stan.ConnectWait(5*time.Second),
		stan.Pings(1, 5),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { onLost(err) }))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS Streaming at %s (cluster %q) as client %q: %w (check Config.Host/Port/ClusterID; a ClientID must not be used by two running consumers)",
			url, cfg.ClusterID, cfg.ClientID, err)
	}
	log.WithFields(logrus.Fields{"url": url, "cluster_id": cfg.ClusterID, "client_id": cfg.ClientID}).Info("consumer connected to NATS Streaming")
	return &stanTransport{conn: conn}, nil
}

// stanSub is one NATS Streaming subscription.
type stanSub struct {
	sub stan.Subscription
	// closed is set by Close: acknowledgements are not retried any more.
	closed  atomic.Bool
	ackWait time.Duration
}

// Close implements unsubscriber.
func (s *stanSub) Close() error {
	s.closed.Store(true)
	return s.sub.Close()
}

type stanDelivery struct {
	s *stanSub
	m *stan.Msg
}

func (d stanDelivery) Data() []byte { return d.m.Data }

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

func (t *stanTransport) subscribe(subject string, opts subOptions, handle func(delivery)) (unsubscriber, error) {
	so := []stan.SubscriptionOption{
		stan.DurableName(opts.durable),
		stan.SetManualAckMode(),
		stan.MaxInflight(1),
		stan.AckWait(opts.ackWait),
	}
	if opts.fromStart {
		so = append(so, stan.DeliverAllAvailable())
	}
	s := &stanSub{ackWait: opts.ackWait}
	cb := func(m *stan.Msg) { handle(stanDelivery{s: s, m: m}) }
	var err error
	if opts.queueGroup != "" {
		s.sub, err = t.conn.QueueSubscribe(subject, opts.queueGroup, cb, so...)
	} else {
		s.sub, err = t.conn.Subscribe(subject, cb, so...)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	return s, nil
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
