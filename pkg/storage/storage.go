// Package storage keeps the producer's checkpoint: the binlog position after
// the last transaction whose every message the broker acknowledged.
//
// Two stores exist: bolt (a local file, the default, meant for a
// StatefulSet's volume) and redis. Both refuse to guess: an unreachable
// store or a value that cannot be decoded is an error naming the store and
// the file or key, never "no checkpoint".
package storage

import (
	"context"
	"errors"
	"time"

	"github.com/dbsync/dbsync/pkg/position"
)

// ErrNoCheckpoint is returned by Get when the store is healthy but holds no
// checkpoint yet (first start).
var ErrNoCheckpoint = errors.New("no checkpoint saved yet")

// PositionStorager saves and loads the checkpoint.
type PositionStorager interface {
	// Get returns the saved checkpoint. It returns an error wrapping
	// ErrNoCheckpoint when none was ever saved, and any other error when the
	// store cannot be read or its content is corrupt.
	Get(ctx context.Context) (position.Position, error)
	// Save durably stores pos; when it returns nil, a later Get (also after a
	// crash or restart) returns pos.
	Save(ctx context.Context, pos position.Position) error
	// Delete removes the checkpoint, so the next start is a first start.
	// Deleting a missing checkpoint is not an error.
	Delete(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Leaser is implemented by stores that several processes can open at once
// (redis). Whoever writes the checkpoint holds the lease, so a second
// producer, or an admin command, cannot write it at the same time. A store
// opened exclusively (bolt's file lock) needs none.
//
// Once a store holds a lease, its Save and Delete are fenced: they write
// only while the lease is still this owner's, and fail with an error
// wrapping ErrLeaseLost otherwise. A store that took no lease writes only
// while nobody holds one.
type Leaser interface {
	// AcquireLease holds the store for owner (an id unique to this
	// process) until the lease's Release; it lapses ttl after the holder
	// stops refreshing it (a crash, a frozen process, a lost network). It
	// fails with an error wrapping ErrHeld, naming the holder, while
	// another owner holds it.
	AcquireLease(ctx context.Context, owner string, ttl time.Duration) (Lease, error)
}

// Lease is a lease held on a store (Leaser.AcquireLease). It is refreshed
// in the background until Release. Its methods are safe for concurrent use.
type Lease interface {
	// Owner is the id the lease is held under.
	Owner() string
	// Lost is closed once the lease is known to be lost: another owner
	// holds it, or it lapsed and another process wrote the checkpoint
	// since. A lost lease is never regained.
	Lost() <-chan struct{}
	// Err returns nil while the lease is held and was confirmed within its
	// ttl. Once Lost is closed it returns an error wrapping ErrLeaseLost
	// that names the new holder; while the lease could not be confirmed
	// for longer than it is guaranteed (the store unreachable) it returns
	// an error wrapping ErrUnavailable: the holder must not act on the
	// store's behalf (publish) until the lease is confirmed again.
	Err() error
	// Release stops refreshing the lease and gives it back when it is
	// still this owner's. Calling it again does nothing.
	Release()
}
