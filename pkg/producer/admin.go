package producer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// leaseTTL is how long a redis checkpoint lease outlives its holder.
const leaseTTL = 15 * time.Second

// leaseOwner names this process in a redis lease.
func leaseOwner(role string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s %s pid %d", role, host, os.Getpid())
}

// holdStore takes the redis lease for role (bolt's file lock already keeps
// a second writer out); release gives it back.
func holdStore(ctx context.Context, store storage.PositionStorager, role string) (release func(), err error) {
	if r, ok := store.(*storage.RedisStore); ok {
		return r.AcquireLease(ctx, leaseOwner(role), leaseTTL)
	}
	return func() {}, nil
}

// openAdminStore opens the checkpoint store for an admin command and holds
// it, refusing while a running producer does.
func openAdminStore(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (storage.PositionStorager, func(), error) {
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, refuseIfHeld(err)
	}
	release, err := holdStore(ctx, store, "dbsync admin")
	if err != nil {
		store.Close()
		return nil, nil, refuseIfHeld(err)
	}
	return store, func() { release(); store.Close() }, nil
}

func refuseIfHeld(err error) error {
	if errors.Is(err, storage.ErrHeld) {
		return fmt.Errorf("refused: a running producer holds the checkpoint store; stop it first (its current checkpoint is on /metrics as dbsync_checkpoint_*): %w", err)
	}
	return err
}

// ShowCheckpoint returns the stored checkpoint. It errors with
// storage.ErrNoCheckpoint when there is none, and refuses while a producer
// holds a bolt store (its metrics show the checkpoint).
func ShowCheckpoint(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (position.Position, error) {
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return position.Position{}, refuseIfHeld(err)
	}
	defer store.Close()
	return store.Get(ctx)
}

// SetCheckpoint stores pos as the checkpoint, after checking that the
// source still has it; with gtid set instead, the position right after that
// transaction. pos must be a transaction boundary (a position from SHOW
// MASTER STATUS, or the End_log_pos of an Xid event). Refused while a
// producer runs.
func SetCheckpoint(ctx context.Context, cfg *config.Config, pos position.Position, gtid string, log logrus.FieldLogger) (position.Position, error) {
	store, release, err := openAdminStore(ctx, cfg, log)
	if err != nil {
		return pos, err
	}
	defer release()
	rcfg, err := readerConfig(cfg)
	if err != nil {
		return pos, err
	}
	src, err := binlog.Connect(ctx, rcfg, log)
	if err != nil {
		return pos, fmt.Errorf("cannot check the position against the source: %w", err)
	}
	defer src.Close()
	if gtid != "" {
		if pos, err = src.PositionAfterGTID(gtid); err != nil {
			return pos, err
		}
	}
	if err := src.CheckResumable(pos); err != nil {
		return pos, err
	}
	pos.History = historyFor(ctx, store, src, log)
	if err := store.Save(ctx, pos); err != nil {
		return pos, err
	}
	log.WithField("checkpoint", pos.String()).Warn("checkpoint set by hand: the producer resumes here at its next start")
	return pos, nil
}

// historyFor returns the binlog history id of a checkpoint moved by hand:
// the stored checkpoint's when that one still belongs to the server's
// binlog history, else a new one (after RESET MASTER, on another server, or
// when the stored one is purged or missing), so that consumers never take
// the new history's coordinates for replays of the old one.
func historyFor(ctx context.Context, store storage.PositionStorager, src *binlog.Source, log logrus.FieldLogger) string {
	old, err := store.Get(ctx)
	if err == nil && old.History != "" {
		if err = src.CheckResumable(old); err == nil {
			return old.History
		}
	}
	h := position.NewHistory()
	log.WithFields(logrus.Fields{"history": h, "previous": old.History}).WithError(err).
		Warn("the checkpoint starts a new binlog history id: consumers report the change of history and hand every change over")
	return h
}

// ResetCheckpoint moves the checkpoint to where a first start begins: the
// server's current position, or its oldest binlog with Mysql.StartAt
// "oldest". (It does not delete it: a missing checkpoint next to a broker
// that already holds this source's changes is treated as a lost checkpoint.)
// Refused while a producer runs.
func ResetCheckpoint(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (position.Position, error) {
	store, release, err := openAdminStore(ctx, cfg, log)
	if err != nil {
		return position.Position{}, err
	}
	defer release()
	rcfg, err := readerConfig(cfg)
	if err != nil {
		return position.Position{}, err
	}
	src, err := binlog.Connect(ctx, rcfg, log)
	if err != nil {
		return position.Position{}, fmt.Errorf("cannot read the server's position: %w", err)
	}
	defer src.Close()
	var pos position.Position
	if cfg.Mysql.StartAt == "oldest" {
		pos, err = src.OldestPosition()
	} else {
		pos, err = src.CurrentPosition()
	}
	if err != nil {
		return pos, err
	}
	pos.History = historyFor(ctx, store, src, log)
	if err := store.Save(ctx, pos); err != nil {
		return pos, err
	}
	log.WithField("checkpoint", pos.String()).Warn("checkpoint reset to the server's " + cfg.Mysql.StartAt + " position: changes before it are not published")
	return pos, nil
}
