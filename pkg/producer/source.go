package producer

import (
	"context"
	"net"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/monitor"
	"github.com/dbsync/dbsync/pkg/position"
)

// EventReader streams the source's row changes from a transaction boundary;
// a *binlog.Reader is one. Run sends events into out until stop is closed
// (it then finishes the open transaction and returns nil), ctx is done, or
// it fails; errors retrying cannot fix are permanent (pkg/failure).
type EventReader interface {
	Run(ctx context.Context, start position.Position, stop <-chan struct{}, out chan<- binlog.Event) error
}

// ReaderHooks connect the reader of a pass to the producer.
type ReaderHooks struct {
	// Reserve takes an event's bytes from the pass's memory budget before
	// the event is handed on, waiting while the budget is used up; its
	// error (ctx done) stops the reader.
	Reserve func(ctx context.Context, bytes int) error
	// StreamState is told when the binlog stream connects and when it ends
	// (with the reason).
	StreamState func(connected bool, err error)
	// Snapshots, when set, feeds the pass's snapshot chunks to the reader.
	Snapshots *binlog.SnapshotFeed
	// SkipGTIDs is the GTID state of transactions the reader reads past
	// without publishing them (published before a failover).
	SkipGTIDs string
	// SkipTxRows skips the first rows of one transaction (the part the
	// broker holds of the transaction cut by a failover).
	SkipTxRows binlog.TxRows
	// ResumeByGTID asks the server for the binlog by the start's GTID
	// state (the first pass after a failover).
	ResumeByGTID bool
}

// Source is the source server as the producer uses it. BinlogSource is a
// MySQL or MariaDB server's; tests use fakes.
type Source interface {
	// CurrentPosition and OldestPosition are where a first start begins:
	// the end of the server's binlog, or the start of its oldest file.
	CurrentPosition(ctx context.Context) (position.Position, error)
	OldestPosition(ctx context.Context) (position.Position, error)
	// CheckResumable fails when streaming cannot start at pos: its binlog
	// is purged or belongs to another history (permanent errors), or the
	// server cannot be asked.
	CheckResumable(ctx context.Context, pos position.Position) error
	// ResumeAt returns where a pass from checkpoint cp starts on the
	// server now connected: cp itself, or, when the server is another one
	// of the replication topology (a promoted replica), the place its GTID
	// state leads to there (binlog.Source.ResumeAt).
	ResumeAt(ctx context.Context, cp position.Position) (binlog.Resume, error)
	// HoldsPosition reports whether the server's binlog holds pos with its
	// GTID (false when it cannot tell).
	HoldsPosition(ctx context.Context, pos position.Position) bool
	// Reader returns the reader of one pass.
	Reader(hooks ReaderHooks) EventReader
	// OpenMonitor opens a connection of its own on which the monitor
	// measures lag; release closes it.
	OpenMonitor(ctx context.Context) (src monitor.Source, release func(), err error)
}

// BinlogSource is the Source of a MySQL or MariaDB server: queries go over
// src, and each pass and the monitor open connections of their own with
// cfg. src must stay open while the producer runs.
func BinlogSource(src *binlog.Source, cfg binlog.Config, log logrus.FieldLogger) Source {
	return binlogSource{Source: src, cfg: cfg, log: log}
}

type binlogSource struct {
	*binlog.Source
	cfg binlog.Config
	log logrus.FieldLogger
}

// Reader streams from the server the Source is connected to (with
// Mysql.Hosts, the one that answered last).
func (s binlogSource) Reader(hooks ReaderHooks) EventReader {
	cfg := s.cfg
	cfg.Host, cfg.Port = s.Endpoint()
	cfg.Reserve = hooks.Reserve
	cfg.OnStreamState = hooks.StreamState
	cfg.Snapshots = hooks.Snapshots
	cfg.SkipGTIDs = hooks.SkipGTIDs
	cfg.SkipTxRows = hooks.SkipTxRows
	cfg.ResumeByGTID = hooks.ResumeByGTID
	return binlog.NewReader(cfg, s.Source, s.log)
}

func (s binlogSource) OpenMonitor(ctx context.Context) (monitor.Source, func(), error) {
	cfg := s.cfg
	cfg.Host, cfg.Port = s.Endpoint()
	cfg.Alternates = append([]string{net.JoinHostPort(s.cfg.Host, strconv.Itoa(int(s.cfg.Port)))}, s.cfg.Alternates...)
	src, err := binlog.Connect(ctx, cfg, s.log.WithField("component", "monitor"))
	if err != nil {
		return nil, nil, err
	}
	return src, src.Close, nil
}
