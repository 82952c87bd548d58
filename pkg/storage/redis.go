package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
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
	// Username is the ACL user to log in as; empty means "default".
	Username string
	// Password authenticates Username; empty for none.
	Password string
	// TLS, when not nil, secures the connection (the server's TLS port).
	TLS *tls.Config
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
// server, and a Leaser with a second key, the key plus ":lease". The value
// is written with no expiry; how durable it is after a redis crash depends
// on the server's persistence (enable AOF with appendfsync everysec or
// always). Save and Delete are one Lua script each that writes only while
// the lease is this store's (see Leaser). Safe for concurrent use.
type RedisStore struct {
	client *redis.Client
	addr   string
	db     int
	key    string
	user   string
	tls    bool
	log    logrus.FieldLogger

	mu sync.Mutex
	// lease is the lease this store holds, nil when none.
	lease *redisLease
	// known is the checkpoint value this store last read or wrote under
	// its lease ("" for none): a lease that vanished from the server is
	// taken again only while the checkpoint is still this value.
	known string
}

var (
	_ PositionStorager = (*RedisStore)(nil)
	_ Leaser           = (*RedisStore)(nil)
)

// OpenRedis connects to opts.Addr (over TLS when opts.TLS is set), logs in
// as opts.Username and pings it. It fails fast (within about DialTimeout)
// with an error wrapping ErrUnavailable and naming the address when the
// server does not answer; with a permanent error naming the settings to fix
// (never the password) when the server refuses the login, the user lacks a
// permission, or its certificate is not trusted; and with an error naming
// the address when the database index does not exist.
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
		Username:        opts.Username,
		Password:        opts.Password,
		TLSConfig:       opts.TLS,
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
	user := opts.Username
	if user == "" {
		user = "default"
	}
	s := &RedisStore{client: client, addr: opts.Addr, db: opts.DB, key: opts.Key, user: user, tls: opts.TLS != nil, log: log}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, s.classify("cannot connect", err)
	}
	log.WithFields(logrus.Fields{"user": user, "tls": opts.TLS != nil}).Info("redis checkpoint store opened")
	return s, nil
}

// where names the checkpoint in messages.
func (s *RedisStore) where() string {
	return fmt.Sprintf("redis checkpoint at %s (db %d, key %q)", s.addr, s.db, s.key)
}

// unavailablePrefixes are server replies meaning "cannot serve this now".
var unavailablePrefixes = []string{"LOADING", "BUSY", "READONLY", "MISCONF", "OOM", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN"}

// classify wraps a go-redis error: a refused login, a missing permission
// and an untrusted certificate are permanent errors naming the settings to
// fix; transport errors and "cannot serve now" replies wrap ErrUnavailable.
// Redis never quotes the password in its replies, so neither do these
// errors.
func (s *RedisStore) classify(what string, err error) error {
	if terr := classifyTLS(err); terr != nil {
		return failure.WithFix(failure.Permanent(fmt.Errorf("%s: %s: %w", s.where(), what, terr)),
			"point Redis.TLS.CA at the CA that signed the server's certificate and Redis.TLS.ServerName at a name it carries, "+
				"or connect to the server's TLS port (Redis.Port); Redis.TLS.Mode \"disabled\" for a server without TLS")
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, context.DeadlineExceeded) {
		msg := rerr.Error()
		switch {
		case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"),
			strings.HasPrefix(msg, "ERR AUTH"), strings.Contains(msg, "invalid password"):
			return failure.WithFix(failure.Permanent(fmt.Errorf(
				"%s: %s: the server rejected the credentials of user %q; check the configured redis user and password (Redis.Username, Redis.Password or Redis.PasswordFile): %w",
				s.where(), what, s.user, err)),
				"set Redis.Username and Redis.Password (or Redis.PasswordFile; DBSYNC_REDIS_USERNAME, DBSYNC_REDIS_PASSWORD, DBSYNC_REDIS_PASSWORD_FILE) "+
					"to an enabled ACL user of the server and its current password")
		case strings.HasPrefix(msg, "NOPERM"):
			return failure.WithFix(failure.Permanent(fmt.Errorf(
				"%s: %s: the server's ACL refuses user %q a command or key the checkpoint store needs (Redis.Username): %w", s.where(), what, s.user, err)),
				fmt.Sprintf("give the user what the store needs: ACL SETUSER %s %s", s.user, RedisACL(s.key)))
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
	hint := ""
	if !s.tls && errors.Is(err, io.EOF) {
		hint = " (a server that speaks only TLS closes plaintext connections like this: then set Redis.TLS)"
	}
	return fmt.Errorf("%s: %s: server unreachable or not answering%s: %w", s.where(), what, hint, mark(ErrUnavailable, err))
}

// classifyTLS returns the TLS failure in err, or nil when err is not one:
// a certificate the configured CA did not sign, one for another name, or a
// server that does not speak TLS on that port.
func classifyTLS(err error) error {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
		rerr tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &uerr), errors.As(err, &herr), errors.As(err, &cerr):
		return fmt.Errorf("the server's TLS certificate is not trusted (Redis.TLS): %w", err)
	case errors.As(err, &rerr):
		return fmt.Errorf("the server did not answer in TLS (Redis.TLS): %w", err)
	}
	if err != nil && strings.Contains(err.Error(), "tls: ") {
		return fmt.Errorf("TLS handshake failed (Redis.TLS): %w", err)
	}
	return nil
}

// RedisACL returns the ACL rules (as for ACL SETUSER or a users.acl line)
// that let a user use the checkpoint at key, and nothing else: the
// checkpoint key and its lease key, and the commands the store sends.
func RedisACL(key string) string {
	if key == "" {
		key = DefaultRedisKey
	}
	return "resetkeys ~" + aclPattern(key) + " ~" + aclPattern(key+leaseSuffix) +
		" resetchannels -@all +ping +hello +auth +select +get +set +del +pexpire +eval +evalsha"
}

// aclPattern escapes key's glob characters for an ACL key pattern.
func aclPattern(key string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(key)
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
	s.mu.Lock()
	if s.lease != nil {
		s.known = string(val)
	}
	s.mu.Unlock()
	s.log.WithField("position", pos.String()).Debug("checkpoint loaded")
	return pos, nil
}

// Save stores pos (no expiry), fenced: while this store holds a lease the
// value is written only if the lease is still this owner's, and when it
// holds none only if nobody holds one; otherwise nothing is written and the
// error wraps ErrLeaseLost (or ErrHeld for a store without a lease), naming
// the holder. When it returns nil the server has applied the write; see
// RedisStore for durability. A position that fails Validate is refused.
func (s *RedisStore) Save(ctx context.Context, pos position.Position) error {
	s.mu.Lock()
	owner := ""
	if s.lease != nil {
		owner = s.lease.owner
	}
	s.mu.Unlock()
	val, err := encodeCheckpointBy(pos, time.Now(), owner)
	if err != nil {
		return fmt.Errorf("%s: %w", s.where(), err)
	}
	if err := s.fenced(ctx, fmt.Sprintf("saving checkpoint %s", pos), "set", string(val)); err != nil {
		return err
	}
	s.log.WithField("position", pos.String()).Debug("checkpoint saved")
	return nil
}

// Close closes the connection pool. It does not release a lease (see
// Lease.Release).
func (s *RedisStore) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%s: close: %w", s.where(), err)
	}
	return nil
}

// Delete implements PositionStorager; it is fenced like Save.
func (s *RedisStore) Delete(ctx context.Context) error {
	return s.fenced(ctx, "deleting checkpoint", "del", "")
}

// fenced runs op ("set" with val, or "del") on the checkpoint in
// fencedWrite, which checks the lease in the same step.
func (s *RedisStore) fenced(ctx context.Context, what, op, val string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s: %w", s.where(), what, err)
	}
	s.mu.Lock()
	lease, known := s.lease, s.known
	s.mu.Unlock()
	owner, ttl := "", int64(0)
	if lease != nil {
		if err := lease.lostError(); err != nil {
			return fmt.Errorf("%s: refused: %w", what, err)
		}
		owner, ttl = lease.owner, lease.ttl.Milliseconds()
	}
	res, err := fencedWrite.Run(ctx, s.client, []string{s.key, s.leaseKey()}, op, val, owner, known, ttl).Slice()
	if err != nil {
		return s.classify(what, err)
	}
	ok, holder := scriptResult(res)
	if ok {
		if lease != nil {
			s.mu.Lock()
			s.known = val
			s.mu.Unlock()
		}
		return nil
	}
	if lease == nil {
		return fmt.Errorf("%s: %s: refused: %w: %q holds the lease", s.where(), what, ErrHeld, holder)
	}
	return fmt.Errorf("%s: refused: %w", what, lease.markLost(holder))
}

// scriptResult reads a {ok, text} reply of the lease scripts.
func scriptResult(res []any) (ok bool, text string) {
	if len(res) > 0 {
		n, _ := res[0].(int64)
		ok = n == 1
	}
	if len(res) > 1 {
		text, _ = res[1].(string)
	}
	return ok, text
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

// Addr returns the redis server address.
func (s *RedisStore) Addr() string { return s.addr }
