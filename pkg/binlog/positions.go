package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
)

// CurrentPosition is where the server's binlog ends now.
func (s *Source) CurrentPosition(ctx context.Context) (position.Position, error) {
	p, r, err := s.masterStatus(ctx)
	if err != nil {
		return position.Position{}, err
	}
	file, pos := p.File, p.Pos
	if s.flavor == mysql.MariaDBFlavor {
		// The GTID state at exactly that position: @@gtid_binlog_pos,
		// read by a second query, may already include transactions
		// written after it on a busy server.
		gr, err := s.execute(ctx, "SELECT BINLOG_GTID_POS(?, ?)", file, pos)
		var me *mysql.MyError
		switch {
		case errors.As(err, &me) && me.Code == errFunctionMissing:
			// A proxy without the function: the server's state now
			// (the history check then refuses to resume through it).
			p.GTID, _ = s.queryString(ctx, "SELECT @@gtid_binlog_pos")
		case err != nil:
			return position.Position{}, err
		case gr.RowNumber() > 0:
			p.GTID, _ = gr.GetString(0, 0)
		}
	} else if gtid, err := r.GetString(0, 4); err == nil {
		p.GTID = strings.ReplaceAll(gtid, "\n", "")
	}
	return p, nil
}

// CurrentFilePosition is where the server's binlog ends now, as a file and
// offset, without the GTID state CurrentPosition adds: on MariaDB that
// takes BINLOG_GTID_POS, which reads the binlog file from its start up to
// the offset (some 20 ms at 150 MB into a file, more in a 1 GB one): too
// slow for what only compares positions, such as the watermarks of every
// snapshot chunk and the monitor's poll.
func (s *Source) CurrentFilePosition(ctx context.Context) (position.Position, error) {
	p, _, err := s.masterStatus(ctx)
	return p, err
}

// masterStatus runs SHOW MASTER STATUS (SHOW BINARY LOG STATUS on MySQL
// 8.4) and returns the file and offset it names, and its result.
func (s *Source) masterStatus(ctx context.Context) (position.Position, *mysql.Result, error) {
	r, err := s.execute(ctx, "SHOW MASTER STATUS")
	if err != nil && s.flavor == mysql.MySQLFlavor {
		// MySQL 8.4 renamed it.
		r, err = s.execute(ctx, "SHOW BINARY LOG STATUS")
	}
	if err != nil {
		return position.Position{}, nil, err
	}
	if r.RowNumber() == 0 {
		return position.Position{}, nil, failure.Permanent(fmt.Errorf("MySQL at %s has binary logging off (SHOW MASTER STATUS is empty): start it with log_bin=ON and binlog_format=ROW", s.cfg.addr()))
	}
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetUint(0, 1)
	return position.Position{File: file, Pos: uint32(pos), ServerID: s.serverID}, r, nil
}

// OldestPosition is the start of the oldest binlog the server still has.
func (s *Source) OldestPosition(ctx context.Context) (position.Position, error) {
	files, err := s.BinaryLogs(ctx)
	if err != nil {
		return position.Position{}, err
	}
	if len(files) == 0 {
		return position.Position{}, failure.Permanent(fmt.Errorf("MySQL at %s lists no binary logs: start it with log_bin=ON", s.cfg.addr()))
	}
	return position.Position{File: files[0].Name, Pos: 4, ServerID: s.serverID}, nil
}

// BytesBetween returns how many binlog bytes lie from a to b (0 when b is
// not after a), using the file sizes of SHOW BINARY LOGS.
func (s *Source) BytesBetween(ctx context.Context, a, b position.Position) (int64, error) {
	if b.Compare(a) <= 0 {
		return 0, nil
	}
	if a.File == b.File {
		return int64(b.Pos) - int64(a.Pos), nil
	}
	files, err := s.BinaryLogs(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	counting := false
	for _, f := range files {
		switch {
		case f.Name == a.File:
			counting = true
			total += int64(f.Size) - int64(a.Pos)
		case f.Name == b.File:
			return total + int64(b.Pos), nil
		case counting:
			total += int64(f.Size)
		}
	}
	if !counting {
		return 0, fmt.Errorf("binlog %s is not on the server any more", a.File)
	}
	return total, nil
}

// CheckResumable verifies that the server still has pos: its file is listed
// by SHOW BINARY LOGS and pos is not beyond the file's end (which would mean
// a different binlog history, e.g. after RESET MASTER). Failures are fatal.
func (s *Source) CheckResumable(ctx context.Context, pos position.Position) error {
	if err := pos.Validate(); err != nil {
		return failure.Permanent(fmt.Errorf("checkpoint %s: %w", pos, err))
	}
	files, err := s.BinaryLogs(ctx)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return failure.Permanent(fmt.Errorf("MySQL at %s lists no binary logs: start it with log_bin=ON", s.cfg.addr()))
	}
	for _, f := range files {
		if f.Name == pos.File {
			if uint64(pos.Pos) > f.Size {
				return failure.Permanent(fmt.Errorf("checkpoint %s is beyond the end of %s (%d bytes) on MySQL at %s: "+
					"the server's binlog history differs from the one the checkpoint was taken on (RESET MASTER, or another server). "+
					"Re-sync the consumers and reset the checkpoint", pos, f.Name, f.Size, s.cfg.addr()))
			}
			return s.checkHistory(ctx, pos)
		}
	}
	return failure.Permanent(&PurgedError{Pos: pos, Oldest: files[0].Name, Addr: s.cfg.addr()})
}

// checkHistory verifies, when the checkpoint carries a GTID, that the
// server's binlog at pos is the history the checkpoint was taken on:
// MariaDB's BINLOG_GTID_POS(file, pos) must hold the checkpoint's GTIDs;
// on MySQL the GTIDs must be in gtid_executed.
func (s *Source) checkHistory(ctx context.Context, pos position.Position) error {
	if pos.GTID == "" {
		return nil
	}
	if s.flavor != mysql.MariaDBFlavor {
		r, err := s.execute(ctx, "SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed)", pos.GTID)
		if err != nil {
			return s.cfg.missingFunction(err, "GTID_SUBSET()", "to verify that the checkpoint belongs to the server's binlog history")
		}
		if ok, _ := r.GetInt(0, 0); ok != 1 {
			return failure.Permanent(&HistoryError{Pos: pos, Addr: s.cfg.addr(), Reason: "its GTIDs are not in the server's gtid_executed"})
		}
		return nil
	}
	r, err := s.execute(ctx, "SELECT BINLOG_GTID_POS(?, ?)", pos.File, pos.Pos)
	if err != nil {
		return s.cfg.missingFunction(err, "BINLOG_GTID_POS()", "to verify that the checkpoint belongs to the server's binlog history")
	}
	state, _ := r.GetString(0, 0)
	if r.RowNumber() == 0 || state == "" && pos.Pos > 4 {
		return failure.Permanent(&HistoryError{Pos: pos, Addr: s.cfg.addr(), Reason: "the position is not an event boundary there"})
	}
	have := map[string]string{} // domain -> "domain-server-seq"
	for _, g := range strings.Split(state, ",") {
		if g = strings.TrimSpace(g); g != "" {
			domain, _, _ := strings.Cut(g, "-")
			have[domain] = g
		}
	}
	for _, g := range strings.Split(pos.GTID, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		domain, _, _ := strings.Cut(g, "-")
		if have[domain] != g {
			return failure.Permanent(&HistoryError{Pos: pos, ServerGTID: state, Addr: s.cfg.addr(),
				Reason: fmt.Sprintf("the checkpoint says the last transaction before it was %s", g)})
		}
	}
	return nil
}

// HoldsPosition reports whether the server's binlog has pos (a published
// change's coordinate) with pos.GTID as the GTID state there: the change
// belongs to the server's current binlog history. Only MariaDB can tell
// (BINLOG_GTID_POS is exact per position; MySQL's gtid_executed holds the
// GTIDs of a promoted replica too, whose positions differ); elsewhere, and
// without a GTID, it reports false.
func (s *Source) HoldsPosition(ctx context.Context, pos position.Position) bool {
	if pos.GTID == "" || s.flavor != mysql.MariaDBFlavor {
		return false
	}
	return s.CheckResumable(ctx, pos) == nil
}
