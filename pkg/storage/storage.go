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
type Leaser interface {
	// AcquireLease holds the store for owner until release is called (it
	// lapses ttl after a crash). It fails with an error wrapping ErrHeld,
	// naming the holder, while another owner holds it.
	AcquireLease(ctx context.Context, owner string, ttl time.Duration) (release func(), err error)
}
