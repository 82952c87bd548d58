package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/dbsync/dbsync/internal/failpoint"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dbsync/dbsync/pkg/position"
)

// Defaults applied by OpenBolt to empty BoltOptions fields.
const (
	DefaultBoltBucket  = "pos"
	DefaultBoltKey     = "key"
	DefaultBoltTimeout = time.Second
)

// BoltOptions configures a bolt checkpoint file.
type BoltOptions struct {
	// Path is the bolt database file. Its parent directory is created when
	// missing. Required.
	Path string
	// Bucket holds the checkpoint; default "pos".
	Bucket string
	// Key is the checkpoint's key inside Bucket; default "key".
	Key string
	// Timeout is how long OpenBolt waits for the file lock held by another
	// process. Zero or negative means DefaultBoltTimeout; OpenBolt never
	// waits forever.
	Timeout time.Duration
	// MustExist makes OpenBolt fail, with an error wrapping
	// ErrNoCheckpoint, instead of creating a missing file.
	MustExist bool
}

// BoltStore is a PositionStorager backed by one key of a bolt database file.
// Only one process can hold the file open; its methods are safe for
// concurrent use.
type BoltStore struct {
	db     *bolt.DB
	path   string
	bucket string
	key    string
	log    logrus.FieldLogger
}

var _ PositionStorager = (*BoltStore)(nil)

// OpenBolt opens (creating when missing) the bolt file opts.Path and holds its
// exclusive lock until Close. It fails with an error wrapping ErrUnavailable
// when the file stays locked for opts.Timeout (another producer is probably
// running) or cannot be opened, and with one wrapping ErrCorrupt when the file
// is not a bolt database. Every error names the file.
func OpenBolt(opts BoltOptions, log logrus.FieldLogger) (*BoltStore, error) {
	if opts.Path == "" {
		return nil, errors.New("bolt checkpoint store: no file path configured; set the bolt file path (Bolt.File)")
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultBoltBucket
	}
	if opts.Key == "" {
		opts.Key = DefaultBoltKey
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultBoltTimeout
	}
	log = orDiscard(log)
	log = log.WithFields(logrus.Fields{"store": "bolt", "file": opts.Path, "bucket": opts.Bucket, "key": opts.Key})

	if opts.MustExist {
		if _, err := os.Stat(opts.Path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bolt checkpoint file %s does not exist: %w", opts.Path, ErrNoCheckpoint)
		}
	}
	if dir := filepath.Dir(opts.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("bolt checkpoint file %s: cannot create its directory: %w", opts.Path, mark(ErrUnavailable, err))
		}
	}

	if err := checkBoltFile(opts.Path); err != nil {
		return nil, err
	}
	db, err := openBoltGuarded(opts)
	if err != nil {
		return nil, err
	}
	s := &BoltStore{db: db, path: opts.Path, bucket: opts.Bucket, key: opts.Key, log: log}
	log.Info("bolt checkpoint store opened")
	return s, nil
}

// openBoltGuarded calls bolt.Open and turns the ways it fails into errors that
// name the file. bbolt memory-maps the file, so a garbled file can fault or
// panic while being opened; that becomes an ErrCorrupt error instead of a
// crash. (After such a panic the mapping, and with it the file lock, stays
// held until the process exits; callers stop on ErrCorrupt anyway.)
func openBoltGuarded(opts BoltOptions) (db *bolt.DB, err error) {
	var file *os.File
	bopts := &bolt.Options{
		Timeout: opts.Timeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close() // bbolt never returns its handle after a panic
			}
			db = nil
			err = fmt.Errorf("bolt checkpoint file %s is not a readable bolt database (%v): %w; %s", opts.Path, r, ErrCorrupt, recoverHint)
		}
	}()
	db, err = bolt.Open(opts.Path, 0o600, bopts)
	if err == nil {
		return db, nil
	}
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("bolt checkpoint file %s is locked (waited %s), probably by another running producer; stop it or give this one its own file: %w",
			opts.Path, opts.Timeout, mark(ErrHeld, mark(ErrUnavailable, err)))
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum),
		strings.Contains(err.Error(), "file size too small"):
		return nil, fmt.Errorf("bolt checkpoint file %s is not a valid bolt database (corrupt or truncated; %s): %w",
			opts.Path, recoverHint, mark(ErrCorrupt, err))
	default:
		return nil, fmt.Errorf("bolt checkpoint file %s cannot be opened: %w", opts.Path, mark(ErrUnavailable, err))
	}
}

// where names the checkpoint in messages.
func (s *BoltStore) where() string {
	return fmt.Sprintf("bolt checkpoint file %s (bucket %q, key %q)", s.path, s.bucket, s.key)
}

// guard runs fn with faults on the memory-mapped file turned into an
// ErrCorrupt error.
func (s *BoltStore) guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: the database is damaged (%v); %s: %w", s.where(), r, recoverHint, ErrCorrupt)
		}
	}()
	return fn()
}

// Get returns the saved checkpoint. A missing bucket or key is an error
// wrapping ErrNoCheckpoint; a value that does not decode, or decodes to a
// position that fails Validate, is an error wrapping ErrCorrupt that quotes
// the value. Get never modifies the file.
func (s *BoltStore) Get(ctx context.Context) (position.Position, error) {
	if err := ctx.Err(); err != nil {
		return position.Position{}, fmt.Errorf("%s: %w", s.where(), err)
	}
	var (
		val   []byte
		found bool
	)
	err := s.guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(s.bucket))
			if b == nil {
				return nil
			}
			if v := b.Get([]byte(s.key)); v != nil {
				val = append([]byte(nil), v...)
				found = true
			}
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return position.Position{}, err
		}
		return position.Position{}, fmt.Errorf("%s: read failed: %w", s.where(), mark(ErrUnavailable, err))
	}
	if !found {
		return position.Position{}, fmt.Errorf("%s: %w", s.where(), ErrNoCheckpoint)
	}
	pos, err := decodeStored(s.where(), val)
	if err != nil {
		return position.Position{}, err
	}
	s.log.WithField("position", pos.String()).Debug("checkpoint loaded")
	return pos, nil
}

// Save stores pos in one fsync'd bolt transaction; when it returns nil the
// checkpoint survives a crash. A position that fails Validate is refused.
func (s *BoltStore) Save(ctx context.Context, pos position.Position) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", s.where(), err)
	}
	val, err := encodeCheckpoint(pos, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", s.where(), err)
	}
	err = s.guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(s.bucket))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(s.key), val); err != nil {
				return err
			}
			failpoint.Hit("in-checkpoint-write") // written, not yet committed
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("%s: saving checkpoint %s failed: %w", s.where(), pos, mark(ErrUnavailable, err))
	}
	s.log.WithField("position", pos.String()).Debug("checkpoint saved")
	return nil
}

// Delete implements PositionStorager.
func (s *BoltStore) Delete(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", s.where(), err)
	}
	err := s.guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte(s.bucket)); b != nil {
				return b.Delete([]byte(s.key))
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("%s: delete failed: %w", s.where(), mark(ErrUnavailable, err))
	}
	return err
}

// Close releases the file and its lock. Calling it again is harmless.
func (s *BoltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("%s: close: %w", s.where(), err)
	}
	return nil
}

// Path returns the bolt file's path.
func (s *BoltStore) Path() string { return s.path }
