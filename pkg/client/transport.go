package client

import (
	"context"
	"net"
	"strings"
	"time"
)

// delivery is one message as a broker hands it over.
type delivery interface {
	Data() []byte
	// Ack tells the broker the message is done; it is not sent again.
	Ack() error
}

// runAcker is a delivery whose broker can acknowledge a run of messages
// (the delivery and the ones before it in the run) at once.
type runAcker interface {
	// AckRun acknowledges run, which ends with the receiver; it fails like
	// Ack, and messages it could not acknowledge come again.
	AckRun(run []delivery) error
}

// ackRun acknowledges the deliveries of one run, in one step when the
// broker can; the first error is returned (the messages it concerns come
// again and are dropped as duplicates).
func ackRun(run []delivery) error {
	if len(run) == 0 {
		return nil
	}
	if ra, ok := run[len(run)-1].(runAcker); ok {
		return ra.AckRun(run)
	}
	var first error
	for _, d := range run {
		if err := d.Ack(); err != nil && first == nil {
			first = err
		}
	}
	return first
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
	// window is how many unacknowledged messages the subscription may
	// hold (1, or a batch subscription's BatchOptions.MaxChanges): each
	// call of the handler gets the messages that are there, up to window,
	// in order, all of one partition.
	window int
}

// transport is a broker connection the SDK consumes through. Each
// subscription hands over one run of messages at a time (at most
// subOptions.window; the next run only after the previous one was settled),
// which keeps a table's changes in order.
type transport interface {
	subscribe(subject string, opts subOptions, handle func([]delivery)) (unsubscriber, error)
	// publish stores data on subject durably (the dead letter).
	publish(ctx context.Context, subject string, data []byte) error
	close() error
}

type unsubscriber interface {
	// Close stops delivery and keeps the durable position.
	Close() error
}

// natsURL is the broker URL of Config.Host and Config.Port: Host may be a
// URL (a port in it wins) or a bare host.
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
