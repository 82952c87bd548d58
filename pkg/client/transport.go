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
