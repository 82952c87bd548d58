// Package mq publishes dbsync messages to a message broker.
package mq

import "context"

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
