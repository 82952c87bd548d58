package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/redact"
)

// Defaults applied by OpenNATS to empty NATSOptions fields.
const (
	DefaultNATSBucket         = "DBSYNC_CHECKPOINT"
	DefaultNATSConnectTimeout = 5 * time.Second
)

// natsLeaseSuffix names the bucket of the leases: the checkpoint bucket's
// name plus it.
const natsLeaseSuffix = "_LEASE"

// NATSOptions configures a checkpoint kept in a NATS JetStream key-value
// bucket.
type NATSOptions struct {
	// URL is the NATS server (or cluster seed) URL. Required.
	URL string
	// Options are further connection options: authentication and TLS
	// (mq.SecurityOptions).
	Options []nats.Option
	// Bucket is the key-value bucket; default DefaultNATSBucket. Its
	// leases live in the bucket Bucket+"_LEASE".
	Bucket string
	// Key holds the checkpoint; default "key".
	Key string
	// Replicas is the buckets' replication factor in a cluster; default 1.
	Replicas int
	// ConnectTimeout bounds connecting and each request; default 5s.
	ConnectTimeout time.Duration
	// MustExist opens an existing bucket only (the doctor, show): a
	// missing one is an error wrapping ErrNoCheckpoint.
	MustExist bool
}

// NATSStore is a PositionStorager backed by one key of a NATS JetStream
// key-value bucket (replicated with the cluster), and a Leaser whose
// leases are keys of a second bucket whose entries expire after the lease
// ttl (the server's clock, so the holders' clocks do not matter).
//
// Every Save and Delete is a compare-and-set on the key's revision as
// this store last read or wrote it, and taking the lease rewrites the
// checkpoint under the new owner: a producer that lost the lease (it froze
// or was cut off while another took over) can never overwrite a newer
// checkpoint. Safe for concurrent use.
type NATSStore struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	opts   NATSOptions
	log    logrus.FieldLogger
	leases jetstream.KeyValue

	mu sync.Mutex
	// rev is the checkpoint's revision as this store last read or wrote
	// it (0: never seen).
	rev   uint64
	lease *natsLease
}

var (
	_ PositionStorager = (*NATSStore)(nil)
	_ Leaser           = (*NATSStore)(nil)
)

// OpenNATS connects to opts.URL and opens (creating it unless MustExist)
// the checkpoint bucket. An unreachable server is an error wrapping
// ErrUnavailable that names the URL.
func OpenNATS(ctx context.Context, opts NATSOptions, log logrus.FieldLogger) (*NATSStore, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultNATSBucket
	}
	if opts.Key == "" {
		opts.Key = DefaultRedisKey
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultNATSConnectTimeout
	}
	s := &NATSStore{opts: opts, log: orDiscard(log).WithFields(logrus.Fields{"store": "nats", "bucket": opts.Bucket, "key": opts.Key})}
	nc, err := nats.Connect(opts.URL, append([]nats.Option{nats.Name("dbsync checkpoint"), nats.Timeout(opts.ConnectTimeout),
		nats.MaxReconnects(-1)}, opts.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", s.where(), mark(ErrUnavailable, err))
	}
	s.nc = nc
	if s.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", s.where(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	if opts.MustExist {
		s.kv, err = s.js.KeyValue(ctx, opts.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			nc.Close()
			return nil, fmt.Errorf("%s: the bucket does not exist: %w", s.where(), ErrNoCheckpoint)
		}
	} else {
		s.kv, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: opts.Bucket, Description: "dbsync checkpoints", History: 1,
			Storage: jetstream.FileStorage, Replicas: opts.Replicas,
		})
	}
	if err != nil {
		nc.Close()
		return nil, s.classify("open the bucket", err)
	}
	return s, nil
}

// where names the store for messages.
func (s *NATSStore) where() string {
	return fmt.Sprintf("NATS key-value store at %s (bucket %s, key %q)", redact.URL(s.opts.URL), s.opts.Bucket, s.opts.Key)
}

// classify wraps a failed request: an unreachable or timed-out server is
// ErrUnavailable.
func (s *NATSStore) classify(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s: %w", s.where(), what, err)
	}
	switch {
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%s: %s: %w", s.where(), what, mark(ErrUnavailable, err))
	}
	return fmt.Errorf("%s: %s: %w", s.where(), what, err)
}

// Get returns the checkpoint and remembers its revision.
func (s *NATSStore) Get(ctx context.Context) (position.Position, error) {
	if err := ctx.Err(); err != nil {
		return position.Position{}, fmt.Errorf("%s: %w", s.where(), err)
	}
	e, err := s.kv.Get(ctx, s.opts.Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.mu.Lock()
		s.rev = 0
		s.mu.Unlock()
		return position.Position{}, fmt.Errorf("%s: %w", s.where(), ErrNoCheckpoint)
	}
	if err != nil {
		return position.Position{}, s.classify("read", err)
	}
	pos, err := decodeStored(s.where(), e.Value())
	if err != nil {
		return position.Position{}, err
	}
	s.mu.Lock()
	s.rev = e.Revision()
	s.mu.Unlock()
	return pos, nil
}

// Save writes pos if the checkpoint is still at the revision this store
// last saw (compare-and-set); otherwise another process wrote it, and the
// error wraps ErrLeaseLost naming it. Without a lease of its own it writes
// only while nobody holds one.
func (s *NATSStore) Save(ctx context.Context, pos position.Position) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", s.where(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	owner, err := s.writerLocked(ctx)
	if err != nil {
		return err
	}
	val, err := encodeCheckpointBy(pos, time.Now(), owner)
	if err != nil {
		return err
	}
	rev, err := s.writeLocked(ctx, val)
	if err != nil && isWrongRevision(err) && s.adoptOwnLocked(ctx, owner) {
		rev, err = s.writeLocked(ctx, val) // this process's write whose reply was lost
	}
	if err != nil {
		return s.conflictLocked(ctx, "save", err)
	}
	s.rev = rev
	return nil
}

// writeLocked writes val if the checkpoint is at s.rev (absent for 0).
func (s *NATSStore) writeLocked(ctx context.Context, val []byte) (uint64, error) {
	if s.rev == 0 {
		return s.kv.Create(ctx, s.opts.Key, val)
	}
	return s.kv.Update(ctx, s.opts.Key, val, s.rev)
}

// adoptOwnLocked takes the checkpoint's current revision as seen when it
// was written by owner, this process's lease holder: a write whose reply
// was lost (a timeout, a cluster electing a leader) moved the revision,
// and nobody else can have written under the lease since.
func (s *NATSStore) adoptOwnLocked(ctx context.Context, owner string) bool {
	if owner == "" {
		return false
	}
	e, err := s.kv.Get(ctx, s.opts.Key)
	if err != nil {
		return false
	}
	var rec struct {
		Owner string `json:"owner"`
	}
	if json.Unmarshal(e.Value(), &rec) != nil || rec.Owner != owner {
		return false
	}
	s.rev = e.Revision()
	return true
}

// Delete removes the checkpoint under the same compare-and-set as Save.
func (s *NATSStore) Delete(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.writerLocked(ctx); err != nil {
		return err
	}
	if s.rev == 0 {
		// Nothing seen: delete only if there is nothing.
		if _, err := s.kv.Get(ctx, s.opts.Key); errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return s.classify("delete", err)
		}
		return s.conflictLocked(ctx, "delete", jetstream.ErrKeyExists)
	}
	if err := s.kv.Delete(ctx, s.opts.Key, jetstream.LastRevision(s.rev)); err != nil {
		return s.conflictLocked(ctx, "delete", err)
	}
	s.rev = 0
	return nil
}

// writerLocked returns the owner id writes are made under: this store's
// lease holder, or "" when it holds none and nobody else does either (an
// admin command). It fails while the lease is lost, or held by another.
func (s *NATSStore) writerLocked(ctx context.Context) (string, error) {
	if l := s.lease; l != nil {
		if err := l.lostErr(); err != nil {
			return "", err
		}
		return l.owner, nil
	}
	if s.leases == nil {
		kv, err := s.js.KeyValue(ctx, s.opts.Bucket+natsLeaseSuffix)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return "", nil // never leased
		}
		if err != nil {
			return "", s.classify("read the lease", err)
		}
		s.leases = kv
	}
	e, err := s.leases.Get(ctx, s.opts.Key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return "", nil
	case err != nil:
		return "", s.classify("read the lease", err)
	}
	return "", fmt.Errorf("%s: %q holds the checkpoint lease: %w", s.where(), e.Value(), ErrHeld)
}

// conflictLocked turns a refused compare-and-set into the error naming
// who wrote the checkpoint since, and marks a held lease lost.
func (s *NATSStore) conflictLocked(ctx context.Context, what string, err error) error {
	if !isWrongRevision(err) {
		return s.classify(what, err)
	}
	writer := "another process"
	if e, gerr := s.kv.Get(ctx, s.opts.Key); gerr == nil {
		var rec struct {
			Owner string `json:"owner"`
		}
		if json.Unmarshal(e.Value(), &rec) == nil && rec.Owner != "" {
			writer = rec.Owner
		}
	} else if errors.Is(gerr, jetstream.ErrKeyNotFound) {
		writer = "another process (it deleted it)"
	}
	lost := failure.WithFix(failure.Permanent(fmt.Errorf("%s: %s refused: the checkpoint was written by %s since this process last read it: %w",
		s.where(), what, writer, ErrLeaseLost)),
		"another producer holds the checkpoint now; stop this one (it must not publish), or stop the other and restart this one")
	if s.lease != nil {
		s.lease.lose(lost)
	}
	return lost
}

// isWrongRevision reports a refused compare-and-set.
func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return true
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}

// Close releases the lease (if held) and the connection.
func (s *NATSStore) Close() error {
	s.mu.Lock()
	l := s.lease
	s.mu.Unlock()
	if l != nil {
		l.Release()
	}
	s.nc.Close()
	return nil
}

// leaseBucket opens (creating or adjusting it) the bucket of the leases,
// whose entries expire ttl after they are written.
func (s *NATSStore) leaseBucket(ctx context.Context, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: s.opts.Bucket + natsLeaseSuffix, Description: "dbsync checkpoint leases", History: 1, TTL: ttl,
		Storage: jetstream.FileStorage, Replicas: s.opts.Replicas,
	})
	if err != nil {
		return nil, s.classify("open the lease bucket", err)
	}
	return kv, nil
}

// AcquireLease takes the lease for owner: it fails with ErrHeld naming
// the holder while another holds it. Taking it rewrites the checkpoint
// under owner, so that a previous holder's next Save is refused.
func (s *NATSStore) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (Lease, error) {
	leases, err := s.leaseBucket(ctx, ttl)
	if err != nil {
		return nil, err
	}
	rev, err := leases.Create(ctx, s.opts.Key, []byte(owner))
	if errors.Is(err, jetstream.ErrKeyExists) {
		holder := "another process"
		if e, gerr := leases.Get(ctx, s.opts.Key); gerr == nil {
			holder = fmt.Sprintf("%q", e.Value())
		}
		return nil, fmt.Errorf("%s: %s holds the checkpoint lease: %w", s.where(), holder, ErrHeld)
	}
	if err != nil {
		return nil, s.classify("take the lease", err)
	}
	l := &natsLease{store: s, kv: leases, owner: owner, ttl: ttl, rev: rev, confirmed: time.Now(),
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.refresh() // (Release waits for it)
	s.mu.Lock()
	s.leases = leases
	s.lease = l
	err = s.claimLocked(ctx, owner)
	s.mu.Unlock()
	if err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// claimLocked rewrites the checkpoint (if any) under owner, moving its
// revision past whatever a previous holder saw.
func (s *NATSStore) claimLocked(ctx context.Context, owner string) error {
	e, err := s.kv.Get(ctx, s.opts.Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.rev = 0
		return nil
	}
	if err != nil {
		return s.classify("read the checkpoint", err)
	}
	pos, err := decodeStored(s.where(), e.Value())
	if err != nil {
		return err
	}
	val, err := encodeCheckpointBy(pos, time.Now(), owner)
	if err != nil {
		return err
	}
	rev, err := s.kv.Update(ctx, s.opts.Key, val, e.Revision())
	if err != nil {
		return s.classify("claim the checkpoint", err)
	}
	s.rev = rev
	return nil
}

// natsLease is a lease held in the lease bucket, renewed every ttl/3 by
// a compare-and-set on its revision.
type natsLease struct {
	store *NATSStore
	kv    jetstream.KeyValue
	owner string
	ttl   time.Duration

	mu         sync.Mutex
	rev        uint64
	confirmed  time.Time
	lostReason error

	lost, stop, done   chan struct{}
	loseOnce, stopOnce sync.Once
}

func (l *natsLease) Owner() string         { return l.owner }
func (l *natsLease) Lost() <-chan struct{} { return l.lost }

// Err returns nil while the lease is held and confirmed within its ttl.
func (l *natsLease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lostReason != nil {
		return l.lostReason
	}
	if since := time.Since(l.confirmed); since > l.ttl {
		return fmt.Errorf("%s: the lease of %q was not confirmed for %s: %w", l.store.where(), l.owner, since.Round(time.Second), ErrUnavailable)
	}
	return nil
}

func (l *natsLease) lostErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lostReason
}

func (l *natsLease) lose(err error) {
	l.loseOnce.Do(func() {
		l.mu.Lock()
		l.lostReason = err
		l.mu.Unlock()
		close(l.lost)
		l.store.log.WithError(err).Error("checkpoint lease lost")
	})
}

// refresh renews the lease until Release or its loss.
func (l *natsLease) refresh() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.lost:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		err := l.renew(ctx)
		cancel()
		if err != nil {
			l.store.log.WithError(err).Warn("checkpoint lease not renewed")
		}
	}
}

// renew moves the lease's entry on; an entry gone (it expired while this
// process could not renew it) is taken again only while nobody wrote the
// checkpoint since.
func (l *natsLease) renew(ctx context.Context) error {
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	newRev, err := l.kv.Update(ctx, l.store.opts.Key, []byte(l.owner), rev)
	if err == nil {
		l.mu.Lock()
		l.rev, l.confirmed = newRev, time.Now()
		l.mu.Unlock()
		return nil
	}
	if !isWrongRevision(err) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	e, gerr := l.kv.Get(ctx, l.store.opts.Key)
	switch {
	case gerr == nil && string(e.Value()) != l.owner:
		l.lose(l.lostTo(fmt.Sprintf("%q", e.Value())))
		return nil
	case gerr == nil:
		// Still this owner's: a renewal whose reply was lost moved it.
		l.mu.Lock()
		l.rev, l.confirmed = e.Revision(), time.Now()
		l.mu.Unlock()
		return nil
	case !errors.Is(gerr, jetstream.ErrKeyNotFound):
		return gerr
	}
	// Gone: take it again if the checkpoint is still where this process
	// last left it (no save of this process comes in between).
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	seen := l.store.rev
	ce, cerr := l.store.kv.Get(ctx, l.store.opts.Key)
	current := uint64(0)
	if cerr == nil {
		current = ce.Revision()
	} else if !errors.Is(cerr, jetstream.ErrKeyNotFound) {
		return cerr
	}
	if current != seen {
		l.lose(l.lostTo("another process"))
		return nil
	}
	newRev, err = l.kv.Create(ctx, l.store.opts.Key, []byte(l.owner))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			l.lose(l.lostTo("another process"))
			return nil
		}
		return err
	}
	l.mu.Lock()
	l.rev, l.confirmed = newRev, time.Now()
	l.mu.Unlock()
	return nil
}

func (l *natsLease) lostTo(holder string) error {
	return failure.WithFix(failure.Permanent(fmt.Errorf("%s: the checkpoint lease of %q was taken by %s: %w", l.store.where(), l.owner, holder, ErrLeaseLost)),
		"another producer holds the checkpoint now; stop this one (it must not publish), or stop the other and restart this one")
}

// Release stops renewing the lease and deletes its entry if it is still
// this owner's.
func (l *natsLease) Release() {
	l.stopOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		rev, lost := l.rev, l.lostReason != nil
		l.mu.Unlock()
		if !lost {
			ctx, cancel := context.WithTimeout(context.Background(), l.store.opts.ConnectTimeout)
			_ = l.kv.Delete(ctx, l.store.opts.Key, jetstream.LastRevision(rev))
			cancel()
		}
		l.store.mu.Lock()
		if l.store.lease == l {
			l.store.lease = nil
		}
		l.store.mu.Unlock()
	})
}
