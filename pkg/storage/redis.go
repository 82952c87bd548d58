package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/position"
)

// Defaults applied by OpenRedis to empty RedisOptions fields.
const (
	DefaultRedisKey         = "key"
	DefaultRedisDialTimeout = 2 * time.Second
	DefaultRedisReadTimeout = 2 * time.Second
)

// RedisOptions configures a redis checkpoint key.
type RedisOptions struct {
	// Addr is host:port of the redis server. Required.
	Addr string
	// Password authenticates as the default user; empty for none.
	Password string
	// DB is the database index (SELECT).
	DB int
	// Key holds the checkpoint; default "key".
	Key string
	// DialTimeout bounds connecting; default 2s.
	DialTimeout time.Duration
	// ReadTimeout bounds each reply and each write; default 2s.
	ReadTimeout time.Duration
}

// RedisStore is a PositionStorager backed by one string key of a redis
// server. The value is written with SET and no expiry; how durable it is
// after a redis crash depends on the server's persistence (enable AOF with
// appendfsync everysec or always). Safe for concurrent use.
type RedisStore struct {
	client *redis.Client
	addr   string
	db     int
	key    string
	log    logrus.FieldLogger
}

var (
	_ PositionStorager = (*RedisStore)(nil)
	_ Leaser           = (*RedisStore)(nil)
)

// OpenRedis connects to opts.Addr and pings it. It fails fast (within about
// DialTimeout) with an error wrapping ErrUnavailable and naming the address
// when the server does not answer, and with an error naming the address when
// the server refuses the password or database index.
func OpenRedis(ctx context.Context, opts RedisOptions, log logrus.FieldLogger) (*RedisStore, error) {
	if opts.Addr == "" {
		return nil, errors.New("redis checkpoint store: no address configured; set the redis host and port (Redis.Host, Redis.Port)")
	}
	if opts.Key == "" {
		opts.Key = DefaultRedisKey
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultRedisDialTimeout
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultRedisReadTimeout
	}
	log = orDiscard(log).WithFields(logrus.Fields{"store": "redis", "addr": opts.Addr, "db": opts.DB, "key": opts.Key})

	client := redis.NewClient(&redis.Options{
		Addr:            opts.Addr,
		Password:        opts.Password,
		DB:              opts.DB,
		DialTimeout:     opts.DialTimeout,
		ReadTimeout:     opts.ReadTimeout,
		WriteTimeout:    opts.ReadTimeout,
		PoolTimeout:     opts.DialTimeout + opts.ReadTimeout,
		PoolSize:        2,
		MaxRetries:      1,
		DialerRetries:   1,
		DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	s := &RedisStore{client: client, addr: opts.Addr, db: opts.DB, key: opts.Key, log: log}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, s.classify("cannot connect", err)
	}
	log.Info("redis checkpoint store opened")
	return s, nil
}

// where names the checkpoint in messages.
func (s *RedisStore) where() string {
	return fmt.Sprintf("redis checkpoint at %s (db %d, key %q)", s.addr, s.db, s.key)
}

// unavailablePrefixes are server replies meaning "cannot serve this now".
var unavailablePrefixes = []string{"LOADING", "BUSY", "READONLY", "MISCONF", "OOM", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN"}

// classify wraps a go-redis error: server replies about credentials name the
// fix; transport errors and "cannot serve now" replies wrap ErrUnavailable.
func (s *RedisStore) classify(what string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, context.DeadlineExceeded) {
		msg := rerr.Error()
		switch {
		case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"),
			strings.HasPrefix(msg, "ERR AUTH"), strings.Contains(msg, "invalid password"):
			return fmt.Errorf("%s: %s: the server rejected the credentials; check the configured redis password (Redis.Password): %w", s.where(), what, err)
		case strings.Contains(msg, "DB index is out of range"):
			return fmt.Errorf("%s: %s: the server has no database %d; check the configured redis database index: %w", s.where(), what, s.db, err)
		}
		for _, p := range unavailablePrefixes {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("%s: %s: %w", s.where(), what, mark(ErrUnavailable, err))
			}
		}
		return fmt.Errorf("%s: %s: %w", s.where(), what, err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %s: %w", s.where(), what, err)
	}
	return fmt.Errorf("%s: %s: server unreachable or not answering: %w", s.where(), what, mark(ErrUnavailable, err))
}

// Get returns the saved checkpoint. A missing key is an error wrapping
// ErrNoCheckpoint; a value that does not decode (or a key of another type)
// is an error wrapping ErrCorrupt that quotes the value; an unreachable
// server is an error wrapping ErrUnavailable.
func (s *RedisStore) Get(ctx context.Context) (position.Position, error) {
	val, err := s.client.Get(ctx, s.key).Bytes()
	if errors.Is(err, redis.Nil) {
		return position.Position{}, fmt.Errorf("%s: %w", s.where(), ErrNoCheckpoint)
	}
	if err != nil {
		if redis.HasErrorPrefix(err, "WRONGTYPE") {
			return position.Position{}, fmt.Errorf("%s holds a value that is not a string (%v); %s: %w", s.where(), err, recoverHint, ErrCorrupt)
		}
		return position.Position{}, s.classify("reading checkpoint", err)
	}
	pos, err := decodeStored(s.where(), val)
	if err != nil {
		return position.Position{}, err
	}
	s.log.WithField("position", pos.String()).Debug("checkpoint loaded")
	return pos, nil
}

// Save stores pos with SET (no expiry). When it returns nil the server has
// applied the write; see RedisStore for durability. A position that fails
// Validate is refused.
func (s *RedisStore) Save(ctx context.Context, pos position.Position) error {
	val, err := encodeCheckpoint(pos, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", s.where(), err)
	}
	if err := s.client.Set(ctx, s.key, val, 0).Err(); err != nil {
		return s.classify(fmt.Sprintf("saving checkpoint %s", pos), err)
	}
	s.log.WithField("position", pos.String()).Debug("checkpoint saved")
	return nil
}

// Close closes the connection pool.
func (s *RedisStore) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%s: close: %w", s.where(), err)
	}
	return nil
}

// Delete implements PositionStorager.
func (s *RedisStore) Delete(ctx context.Context) error {
	if err := s.client.Del(ctx, s.key).Err(); err != nil {
		return s.classify("deleting checkpoint", err)
	}
	return nil
}

// leaseKey holds the name of the producer that owns the checkpoint key.
func (s *RedisStore) leaseKey() string { return s.key + ":lease" }

// AcquireLease implements Leaser with a key next to the checkpoint's that
// names the owner, refreshed in the background every ttl/3.
func (s *RedisStore) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (release func(), err error) {
	ok, err := s.client.SetNX(ctx, s.leaseKey(), owner, ttl).Result()
	if err != nil {
		return nil, s.classify("taking the lease", err)
	}
	if !ok {
		holder, _ := s.client.Get(ctx, s.leaseKey()).Result()
		return nil, fmt.Errorf("%s: %w: %q (it lapses %s after that producer stops)", s.where(), ErrHeld, holder, ttl)
	}
	refreshLease, releaseLease := redis.NewScript(refreshLeaseScript), redis.NewScript(releaseLeaseScript)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(context.Background(), ttl/3)
				err := refreshLease.Run(rctx, s.client, []string{s.leaseKey()}, owner, ttl.Milliseconds()).Err()
				cancel()
				if err != nil {
					s.log.WithError(err).Warn("could not refresh the redis checkpoint lease")
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = releaseLease.Run(rctx, s.client, []string{s.leaseKey()}, owner).Err()
	}, nil
}

// LeaseHolder returns the owner holding the lease, or "" when none does.
func (s *RedisStore) LeaseHolder(ctx context.Context) (string, error) {
	holder, err := s.client.Get(ctx, s.leaseKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", s.classify("reading the lease", err)
	}
	return holder, nil
}

// Lease scripts: refresh or release the lease only while owner holds it.
const (
	// refresh also re-takes a lease redis lost (a restart without persistence).
	refreshLeaseScript = `local v = redis.call("GET", KEYS[1])
if v == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
if not v then return redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2]) end
return 0`
	releaseLeaseScript = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`
)

// Addr returns the redis server address.
func (s *RedisStore) Addr() string { return s.addr }
