package storage

import (
	"errors"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
)

// ErrCorrupt is wrapped by errors from Open and Get when the store holds
// something that is not a valid checkpoint: a bolt file that is not a bolt
// database, or a value that does not decode or names an impossible position.
// dbsync never replaces such a value by a guess; an operator must restore or
// set the checkpoint (its failure.Fix says so). Test with errors.Is. It is
// permanent (failure.IsPermanent): retrying cannot fix it.
var ErrCorrupt = failure.WithFix(failure.Permanent(errors.New("checkpoint is corrupt")),
	"restore the checkpoint from a backup, or set the checkpoint explicitly")

// ErrUnavailable is wrapped by errors from Open, Get and Save when the store
// cannot be reached right now: the bolt file is locked by another process or
// cannot be opened, or the redis server does not answer. Retrying later may
// succeed. Test with errors.Is.
var ErrUnavailable = errors.New("checkpoint store is unavailable")

// ErrHeld is wrapped by errors from OpenBolt and Leaser.AcquireLease when
// another running process (a producer, an admin command) holds the store.
var ErrHeld = errors.New("checkpoint store is held by a running producer")

// ErrLeaseLost is wrapped by errors from Save and Delete of a store whose
// lease (Leaser) another process took, and by Lease.Err once the lease is
// lost: the checkpoint was not written, and the process must stop writing
// and publishing, since another producer now owns the checkpoint. It is
// permanent (failure.IsPermanent) and carries a fix.
var ErrLeaseLost = failure.WithFix(failure.Permanent(errors.New("checkpoint lease lost")),
	"run one producer per source (one replica, one checkpoint key); this one stopped without writing the checkpoint. "+
		"If the other producer is the one you mean to run, nothing to do; otherwise stop it and restart this one, which takes the lease again")

// LeaseLostError is the error of a lost lease (it wraps ErrLeaseLost):
// which checkpoint, who holds the lease now, and who held it. Callers that
// say who took over find it with errors.As.
type LeaseLostError struct {
	// Where names the checkpoint ("redis checkpoint at ...").
	Where string
	// Holder is the lease's new owner; "" when the lease lapsed and nobody
	// holds it, but another process wrote the checkpoint since.
	Holder string
	// Owner is the id the lease was held under.
	Owner string
}

func (e *LeaseLostError) Error() string {
	if e.Holder != "" {
		return fmt.Sprintf("%s: %v to %q: another producer took the checkpoint (this process held it as %q)", e.Where, ErrLeaseLost, e.Holder, e.Owner)
	}
	return fmt.Sprintf("%s: %v: it lapsed, and another process wrote the checkpoint since (this process held it as %q)", e.Where, ErrLeaseLost, e.Owner)
}

// Unwrap returns ErrLeaseLost, so the error is permanent and has its fix.
func (e *LeaseLostError) Unwrap() error { return ErrLeaseLost }

// recoverHint is part of every ErrCorrupt message.
const recoverHint = "dbsync will not guess a position"

// orDiscard returns log, or a logger that discards everything when log is nil.
func orDiscard(log logrus.FieldLogger) logrus.FieldLogger {
	if log != nil {
		return log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// marked is an error that reads as err but also matches sentinel with
// errors.Is, so messages stay one line.
type marked struct {
	sentinel error
	err      error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.sentinel, m.err} }

// mark returns err, additionally matching sentinel (ErrCorrupt or
// ErrUnavailable) with errors.Is.
func mark(sentinel, err error) error { return &marked{sentinel: sentinel, err: err} }
