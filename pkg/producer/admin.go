package producer

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// CheckpointSource is what moving the checkpoint by hand asks the source
// server; a *binlog.Source is one.
type CheckpointSource interface {
	CurrentPosition(ctx context.Context) (position.Position, error)
	OldestPosition(ctx context.Context) (position.Position, error)
	CheckResumable(ctx context.Context, pos position.Position) error
	// CheckBoundary fails when pos is not the start of a transaction (or
	// of a binlog file's framing, or its end).
	CheckBoundary(ctx context.Context, pos position.Position) error
	// PositionAfterGTID returns the position right after transaction gtid.
	PositionAfterGTID(ctx context.Context, gtid string) (position.Position, error)
	// ServerID is the server's server_id, recorded with the checkpoint.
	ServerID() uint32
}

// SetCheckpoint stores pos as the checkpoint, after checking that src still
// has it; with gtid set instead, the position right after that
// transaction. pos must be a transaction boundary (a position from SHOW
// MASTER STATUS, or the End_log_pos of an Xid event): any other position
// is refused (CheckBoundary), naming the nearest boundaries. The caller holds
// store, so no producer runs meanwhile.
func SetCheckpoint(ctx context.Context, store storage.PositionStorager, src CheckpointSource, pos position.Position, gtid string, log logrus.FieldLogger) (position.Position, error) {
	var err error
	if gtid != "" {
		if pos, err = src.PositionAfterGTID(ctx, gtid); err != nil {
			return pos, err
		}
	}
	if err := src.CheckResumable(ctx, pos); err != nil {
		return pos, err
	}
	if err := src.CheckBoundary(ctx, pos); err != nil {
		return pos, err
	}
	pos.ServerID = src.ServerID()
	pos.History, pos.Continues = historyFor(ctx, store, src, log)
	if err := store.Save(ctx, pos); err != nil {
		return pos, err
	}
	log.WithField("checkpoint", pos.String()).Warn("checkpoint set by hand: the producer resumes here at its next start")
	return pos, nil
}

// ResetCheckpoint moves the checkpoint to where a first start begins: the
// server's current position, or with oldest its oldest binlog. (It does not
// delete it: a missing checkpoint next to a broker that already holds this
// source's changes is taken for a lost checkpoint.) The caller holds store.
func ResetCheckpoint(ctx context.Context, store storage.PositionStorager, src CheckpointSource, oldest bool, log logrus.FieldLogger) (position.Position, error) {
	var pos position.Position
	var err error
	where := "current"
	if oldest {
		pos, err = src.OldestPosition(ctx)
		where = "oldest"
	} else {
		pos, err = src.CurrentPosition(ctx)
	}
	if err != nil {
		return pos, err
	}
	pos.History, pos.Continues = historyFor(ctx, store, src, log)
	if err := store.Save(ctx, pos); err != nil {
		return pos, err
	}
	log.WithField("checkpoint", pos.String()).Warn("checkpoint reset to the server's " + where + " position: changes before it are not published")
	return pos, nil
}

// historyFor returns the binlog history id of a checkpoint moved by hand,
// and the history that one continues: the stored checkpoint's when that
// one still belongs to the server's binlog history, else a new one (after
// RESET MASTER, on another server, or when the stored one is purged or
// missing) that continues none, so that consumers never take the new
// history's coordinates for replays of the old one.
func historyFor(ctx context.Context, store storage.PositionStorager, src CheckpointSource, log logrus.FieldLogger) (history, continues string) {
	old, err := store.Get(ctx)
	if err == nil && old.History != "" {
		if err = src.CheckResumable(ctx, old); err == nil {
			return old.History, old.Continues
		}
	}
	h := position.NewHistory()
	log.WithFields(logrus.Fields{"history": h, "previous": old.History}).WithError(err).
		Warn("the checkpoint starts a new binlog history id: consumers report the change of history and hand every change over")
	return h, ""
}
