package client

import (
	"errors"
	"fmt"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// DeliveryError reports one failed attempt to deliver a change; the change
// is handed over again after a backoff, and later changes of its subject
// wait for it.
type DeliveryError struct {
	Subject string
	ID      string
	Attempt int
	Err     error
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("subject %s, change %s, attempt %d: %v", e.Subject, e.ID, e.Attempt, e.Err)
}
func (e *DeliveryError) Unwrap() error { return e.Err }

// PoisonError reports a message that cannot be decoded: not a valid
// envelope (bad JSON, an unknown version, a missing field), another
// table's envelope, or a value that does not fit its field. Retrying cannot
// help; Config.OnPoison says what happens to it.
type PoisonError struct {
	Subject string
	// ID is the change's id, when the envelope could be read that far.
	ID string
	// Data is the message as received.
	Data []byte
	Err  error
}

func (e *PoisonError) Error() string {
	id := e.ID
	if id == "" {
		id = "(no id)"
	}
	return fmt.Sprintf("subject %s, message %s cannot be decoded: %v", e.Subject, id, e.Err)
}
func (e *PoisonError) Unwrap() error { return e.Err }

// HistoryChangeError reports a change from another binlog history than the
// last one handed over on its subject (the source's binlog was reset, the
// producer now reads another server, or the binlog base name changed): its
// coordinate says nothing about whether it is a replay. It is handed over
// unless Config.StopOnHistoryChange is set.
type HistoryChangeError struct {
	Subject string
	// Last is the last change handed over; Got the one from another history.
	Last, Got Coordinate
	// Why names what differs.
	Why string
}

func (e *HistoryChangeError) Error() string {
	return fmt.Sprintf("subject %s: change %s belongs to another binlog history than the last one handed over, %s: %s",
		e.Subject, e.Got.ID(), e.Last.ID(), e.Why)
}

// LateChangeError reports a change that arrived after changes that follow it
// in the binlog, and that was never handed over: the broker stored later
// changes without it (NATS Streaming keeps no order across a refused
// message), and the producer's replay brought it. It is handed over, out of
// order.
type LateChangeError struct {
	Subject string
	ID      string
	// Last is the newest change handed over before it.
	Last Coordinate
}

func (e *LateChangeError) Error() string {
	return fmt.Sprintf("subject %s: change %s arrived after %s, which follows it in the binlog; it was never handed over and is handed over now, out of order",
		e.Subject, e.ID, e.Last.ID())
}

// TableMismatchError reports an envelope of another table than the struct
// it is decoded into names (TableName, or Config.Database with the type's
// name), or than the subscription's.
type TableMismatchError struct {
	// Want is the table of the struct or subscription ("db.table", or
	// "table" when the struct names no database); Got the envelope's.
	Want, Got string
	// Type is the struct type's name ("" for a subscription).
	Type string
}

func (e *TableMismatchError) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("the envelope is a change of table %s, not of the subscribed %s", e.Got, e.Want)
	}
	return fmt.Sprintf("the envelope is a change of table %s, but %s maps to table %s", e.Got, e.Type, e.Want)
}

// isPoison reports whether err says the message cannot be decoded (rather
// than that the handler failed).
func isPoison(err error) bool {
	var (
		fe *FieldError
		de *envelope.DecodeError
		te *TableMismatchError
		pe *PoisonError
	)
	return errors.As(err, &fe) || errors.As(err, &de) || errors.As(err, &te) || errors.As(err, &pe)
}
