package wiring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/redact"
	"github.com/dbsync/dbsync/pkg/storage"
)

// OpenStore opens the checkpoint store Storage.DaoName names ("bolt", the
// default, or "redis"), creating a bolt file that does not exist yet.
func OpenStore(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (storage.PositionStorager, error) {
	return openStore(ctx, cfg, log, true)
}

// InspectStore opens the checkpoint store without creating anything: a
// store that does not exist yet is an error wrapping
// storage.ErrNoCheckpoint.
func InspectStore(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (storage.PositionStorager, error) {
	return openStore(ctx, cfg, log, false)
}

func openStore(ctx context.Context, cfg *config.Config, log logrus.FieldLogger, create bool) (storage.PositionStorager, error) {
	log = orDiscard(log)
	switch cfg.Storage.DaoName {
	case "nats":
		tlsConfig, err := natsTLS("JetStream.TLS", cfg.JetStream.TLS, cfg.JetStream.URL)
		if err != nil {
			return nil, err
		}
		security, err := mq.SecurityOptions(natsAuth(cfg.JetStream.Auth), tlsConfig)
		if err != nil {
			return nil, failure.WithFix(err, "set one kind of JetStream.Auth")
		}
		store, err := storage.OpenNATS(ctx, storage.NATSOptions{
			URL:       cfg.JetStream.URL,
			Options:   security,
			Bucket:    cfg.JetStream.CheckpointBucket,
			Key:       cfg.Storage.PosKey,
			Replicas:  cfg.JetStream.Replicas,
			MustExist: !create,
		}, log)
		if err != nil {
			if errors.Is(err, storage.ErrNoCheckpoint) || failure.Fix(err) != "" {
				return nil, err
			}
			return nil, failure.WithFix(err, "start the NATS server (with JetStream) there, or fix JetStream.URL and JetStream.Auth (DBSYNC_JETSTREAM_URL, ...)")
		}
		return store, nil
	case "redis":
		mode := cfg.Redis.TLS.Effective(false)
		tlsConfig, err := clientTLS("Redis.TLS", cfg.Redis.TLS, mode, cfg.Redis.Host)
		if err != nil {
			return nil, err
		}
		store, err := storage.OpenRedis(ctx, storage.RedisOptions{
			Addr:     cfg.RedisAddr(),
			Username: cfg.Redis.Username,
			Password: cfg.Redis.Password,
			TLS:      tlsConfig,
			DB:       cfg.Redis.DB,
			Key:      cfg.Storage.PosKey,
		}, log)
		if err != nil {
			if failure.Fix(err) != "" {
				return nil, err // the store named the setting to fix
			}
			return nil, failure.WithFix(err, "start Redis there, or fix Redis.Host, Redis.Port, Redis.Username and Redis.Password "+
				"(DBSYNC_REDIS_HOST, DBSYNC_REDIS_PORT, DBSYNC_REDIS_USERNAME, DBSYNC_REDIS_PASSWORD)")
		}
		return store, nil
	default:
		store, err := storage.OpenBolt(storage.BoltOptions{
			Path:      cfg.BoltPath(),
			Bucket:    cfg.Bolt.Bucket,
			Key:       cfg.Storage.PosKey,
			Timeout:   cfg.Bolt.Timeout.Duration(),
			MustExist: !create,
		}, log)
		if err != nil {
			return nil, boltFix(cfg, err)
		}
		return store, nil
	}
}

// boltFix attaches to an OpenBolt error what to do about it.
func boltFix(cfg *config.Config, err error) error {
	switch {
	case errors.Is(err, storage.ErrNoCheckpoint):
		return err
	case errors.Is(err, storage.ErrHeld):
		return failure.WithFix(err, "nothing if that producer is the one you mean to run; otherwise stop it, or give this one its own Bolt.File / DataDir")
	case errors.Is(err, storage.ErrCorrupt):
		return failure.WithFix(err, fmt.Sprintf("restore %s from a backup; or, after re-syncing the consumers, delete it (the producer then starts at %s)",
			cfg.BoltPath(), cfg.DescribeStartAt()))
	}
	return failure.WithFix(err, "make the file readable and writable by the producer, or point Bolt.File / DataDir at a writable place")
}

// DescribeStore names the configured checkpoint store for messages: "bolt
// file PATH" or "redis at ADDR (db N, key K)".
func DescribeStore(cfg *config.Config) string {
	switch cfg.Storage.DaoName {
	case "redis":
		return fmt.Sprintf("redis at %s (db %d, key %q)", cfg.RedisAddr(), cfg.Redis.DB, cfg.Storage.PosKey)
	case "nats":
		return fmt.Sprintf("NATS key-value store at %s (bucket %s, key %q)", redact.URL(cfg.JetStream.URL), cfg.JetStream.CheckpointBucket, cfg.Storage.PosKey)
	}
	return "bolt file " + cfg.BoltPath()
}

// HoldStore takes store's lease for role when the store has one
// (storage.Leaser), under an owner id no other process (nor another call)
// has, so no other process writes the checkpoint while it is held: the
// store's Save fails with storage.ErrLeaseLost once another took it, and
// the lease's Lost channel closes. Release gives it back. A store without a
// lease (bolt's file lock is held while it is open) gets a lease that is
// never lost. It fails with an error wrapping storage.ErrHeld, naming the
// holder, while another process holds it.
func HoldStore(ctx context.Context, store storage.PositionStorager, role string) (storage.Lease, error) {
	return HoldStoreFor(ctx, store, role, config.DefaultLeaseTTL)
}

// HoldStoreFor is HoldStore with a lease that outlives a holder that
// stopped renewing it by ttl (HA.LeaseTTL).
func HoldStoreFor(ctx context.Context, store storage.PositionStorager, role string, ttl time.Duration) (storage.Lease, error) {
	l, ok := store.(storage.Leaser)
	if !ok {
		return exclusive{}, nil
	}
	owner, err := leaseOwner(role)
	if err != nil {
		return nil, err
	}
	return l.AcquireLease(ctx, owner, ttl)
}

// leaseOwner is a lease owner id for role: random, so that every process
// (every incarnation of a pod, whatever its host name and pid) holds its
// own, with the role, host and pid for humans.
func leaseOwner(role string) (string, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("make a checkpoint lease id: %w", err)
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s pid %d #%s", role, host, os.Getpid(), hex.EncodeToString(id[:])), nil
}

// exclusive is the lease of a store opened exclusively (bolt's file lock):
// held while the store is open, never lost.
type exclusive struct{}

func (exclusive) Owner() string         { return "" }
func (exclusive) Lost() <-chan struct{} { return nil }
func (exclusive) Err() error            { return nil }
func (exclusive) Release()              {}
