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

var _ PositionStorager = (*RedisStore)(nil)

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

// Addr returns the redis server address.
func (s *RedisStore) Addr() string { return s.addr }
