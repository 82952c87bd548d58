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

// Resume is where a pass from a checkpoint starts on the server the Source
// is connected to.
type Resume struct {
	// Position is the start: the checkpoint itself, its GTID state
	// completed from the server and its ServerID set, or the place found
	// by GTID on another server.
	Position position.Position
	// Moved is set when Position was found by the checkpoint's GTID state
	// rather than taken from its file and offset: the server is another
	// one than the checkpoint's (a promoted replica, another host of
	// Mysql.Hosts) or it continues a failover. Position.GTID then holds
	// every transaction already published, which the pass reads past.
	Moved bool
}

// ResumeAt returns where a pass from checkpoint cp starts on this server.
// A checkpoint of this server (cp.ServerID is the server's, or unknown) is
// checked with CheckResumable and its GTID state completed. A checkpoint of
// another server is found by its GTID state (ResumeByGTID); so is one of
// this server whose history check fails when it continues a failover (its
// GTID state then merges two servers' orders). Without a GTID state a
// checkpoint of another server is refused: file and offset mean nothing
// there.
func (s *Source) ResumeAt(ctx context.Context, cp position.Position) (Resume, error) {
	// Which server answers is known once a query went through (a broken
	// connection is replaced, with Alternates by another server's).
	if _, err := s.execute(ctx, "SELECT 1"); err != nil {
		return Resume{}, err
	}
	sameServer := cp.ServerID == 0 || cp.ServerID == s.serverID
	if sameServer {
		err := s.CheckResumable(ctx, cp)
		var he *HistoryError
		if err == nil {
			pos, err := s.completeGTID(ctx, cp)
			return Resume{Position: pos}, err
		}
		if !(errors.As(err, &he) && cp.Continues != "" && cp.GTID != "") {
			return Resume{}, err
		}
	}
	if cp.GTID == "" {
		return Resume{}, failure.WithFix(failure.Permanent(fmt.Errorf("checkpoint %s was taken on the server with server_id %d, but MySQL at %s is server_id %d, "+
			"and the checkpoint has no GTID state to find its place there (the old server had no GTIDs, or the checkpoint predates them)",
			cp, cp.ServerID, s.cfg.addr(), s.serverID)),
			"point Mysql.Host back at the checkpoint's server; to fail over by GTID, run the servers with GTIDs (MySQL gtid_mode=ON); "+
				"otherwise re-sync the consumers from a snapshot and reset the checkpoint (producer checkpoint reset)")
	}
	pos, err := s.ResumeByGTID(ctx, cp.GTID)
	if err != nil {
		return Resume{}, err
	}
	pos.History, pos.Continues, pos.Snapshot = cp.History, cp.Continues, cp.Snapshot
	return Resume{Position: pos, Moved: true}, nil
}

// completeGTID returns cp with this server's server_id and, on MariaDB, its
// full GTID state at cp (every domain's, where older checkpoints hold the
// last transaction's GTID only, and checkpoints set by file and offset
// none).
func (s *Source) completeGTID(ctx context.Context, cp position.Position) (position.Position, error) {
	cp.ServerID = s.serverID
	if s.flavor != mysql.MariaDBFlavor {
		return cp, nil
	}
	r, err := s.execute(ctx, "SELECT BINLOG_GTID_POS(?, ?)", cp.File, cp.Pos)
	if err != nil {
		return cp, s.cfg.missingFunction(err, "BINLOG_GTID_POS()", "to read the GTID state at the checkpoint")
	}
	if state, _ := r.GetString(0, 0); state != "" {
		cp.GTID = state
	}
	return cp, nil
}

// ResumeByGTID finds, in this server's binlogs, the place to go on from a
// checkpoint whose GTID state (MariaDB's per-domain list, MySQL's GTID
// set) was taken on another server of the same replication topology: the
// start of the first transaction that state does not hold. The pass then
// reads past the transactions after it that the state holds (a replica may
// order two domains' transactions differently). The returned position has
// this server's server_id and as GTID the state there merged with state.
//
// It refuses, as permanent errors with the fix, what it cannot do without
// losing or guessing: a state the server does not hold (a replica that was
// behind, log_slave_updates off, another topology; *GTIDBehindError), a
// transaction of the state that the server holds under another server id
// (diverged histories), and binlogs purged past the state.
func (s *Source) ResumeByGTID(ctx context.Context, state string) (position.Position, error) {
	want, err := position.ParseGTIDState(state)
	if err != nil || want.IsEmpty() {
		return position.Position{}, failure.Permanent(fmt.Errorf("checkpoint GTID state %q cannot be resumed from on MySQL at %s: %v", state, s.cfg.addr(), err))
	}
	have, err := s.gtidStateNow(ctx)
	if err != nil {
		return position.Position{}, err
	}
	if missing := have.Missing(want); missing != "" {
		return position.Position{}, failure.Permanent(&GTIDBehindError{Addr: s.cfg.addr(), Want: want.String(), Have: have.String(), Missing: missing})
	}
	if s.flavor == mysql.MariaDBFlavor {
		if strict, err := s.queryString(ctx, "SELECT @@GLOBAL.gtid_strict_mode"); err == nil && strict == "0" {
			s.log.WithField("addr", s.cfg.addr()).Warn("failing over to a MariaDB server with gtid_strict_mode=OFF: dbsync takes a domain's sequence numbers as growing " +
				"in binlog order; an errant transaction numbered below the checkpoint's would be skipped; set gtid_strict_mode=ON on every server")
		}
	}
	files, err := s.BinaryLogs(ctx)
	if err != nil {
		return position.Position{}, err
	}
	first := -1
	for i := len(files) - 1; i >= 0; i-- {
		start, err := s.fileStartState(ctx, files[i].Name)
		if err != nil {
			return position.Position{}, err
		}
		if want.Missing(start) == "" {
			first = i
			break
		}
	}
	if first < 0 {
		oldest := "none"
		if len(files) > 0 {
			oldest = files[0].Name
		}
		return position.Position{}, failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s no longer has the binlogs that follow the checkpoint's GTID state %s "+
			"(its oldest binlog, %s, already starts after transactions the checkpoint has not published): the changes in between are lost to dbsync",
			s.cfg.addr(), want, oldest)),
			"re-sync the consumers from a snapshot and reset the checkpoint (producer checkpoint reset); raise binlog_expire_logs_seconds on every server that can become the source")
	}
	return s.scanForResume(ctx, files[first:], want)
}

// scanForResume reads files from the start of the first and returns the
// start of the first transaction want does not hold (or the end of the
// last file when it holds them all).
func (s *Source) scanForResume(ctx context.Context, files []BinlogFile, want position.GTIDState) (position.Position, error) {
	cur, err := s.fileStartState(ctx, files[0].Name)
	if err != nil {
		return position.Position{}, err
	}
	scan := &resumeScan{want: want, cur: cur}
	for _, f := range files {
		if err := s.eachEvent(ctx, f.Name, func(ev binlogEvent) bool { return scan.event(f.Name, ev) }); err != nil {
			return position.Position{}, err
		}
		if scan.diverged != nil {
			return position.Position{}, failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s: %w", s.cfg.addr(), scan.diverged)),
				"this server's history diverged from the checkpoint's server (errant transactions, or two servers written as primaries at once): "+
					"point Mysql.Host at a server of the checkpoint's history, or re-sync the consumers from a snapshot and reset the checkpoint")
		}
		if scan.found != nil {
			break
		}
	}
	at := scan.resumeAt()
	at.ServerID = s.serverID
	return at, nil
}

// resumeScan looks, event by event of SHOW BINLOG EVENTS, for the first
// transaction a GTID state does not hold.
type resumeScan struct {
	want position.GTIDState
	// cur is the GTID state at the event read last.
	cur position.GTIDState
	// found is the start of the first transaction want lacks; end the end
	// of the last event read.
	found *position.Position
	end   position.Position
	// diverged is set when a transaction of want's turns up with another
	// origin.
	diverged error
}

// event reads one event of file; it reports whether to read on.
func (r *resumeScan) event(file string, ev binlogEvent) bool {
	r.end = position.Position{File: file, Pos: uint32(ev.End)}
	if !isGTIDEvent(ev) {
		return true
	}
	g := gtidOfEvent(ev)
	if g == "" {
		return true // anonymous
	}
	if !r.want.Covers(g) {
		r.found = &position.Position{File: file, Pos: uint32(ev.Pos)}
		return false
	}
	if err := sameOrigin(r.want, g); err != nil {
		r.diverged = err
		return false
	}
	r.cur.Add(g)
	return true
}

// resumeAt is where to go on, with the GTID state there merged with want
// (what the pass must not publish again).
func (r *resumeScan) resumeAt() position.Position {
	at := r.end
	if r.found != nil {
		at = *r.found
	}
	st := r.cur.Clone()
	st.Merge(r.want)
	at.GTID = st.String()
	return at
}

// sameOrigin checks, on MariaDB, that a transaction with the sequence
// number of want's last GTID of its domain came from the same server:
// another server id at the same number means the two histories differ.
func sameOrigin(want position.GTIDState, gtid string) error {
	g, err := position.ParseMariaDBGTID(gtid)
	if err != nil {
		return nil // MySQL: GTIDs name their origin
	}
	for _, w := range want.Domains() {
		if w.Domain == g.Domain && w.Seq == g.Seq && w.Server != g.Server {
			return fmt.Errorf("the checkpoint's transaction %s is %s here: the same number from another server", w, g)
		}
	}
	return nil
}

// gtidStateNow is every transaction the server's binlog holds: MariaDB's
// gtid_binlog_pos, MySQL's gtid_executed.
func (s *Source) gtidStateNow(ctx context.Context) (position.GTIDState, error) {
	q := "SELECT @@GLOBAL.gtid_executed"
	if s.flavor == mysql.MariaDBFlavor {
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	v, err := s.queryString(ctx, q)
	if err != nil {
		return position.GTIDState{}, err
	}
	st, err := position.ParseGTIDState(v)
	if err != nil {
		return position.GTIDState{}, fmt.Errorf("MySQL at %s: %s: %w", s.cfg.addr(), q, err)
	}
	return st, nil
}

// fileStartState is the GTID state at the start of a binlog file: the
// Gtid_list event of MariaDB (the last GTID per domain and server; the
// highest per domain counts) or the Previous_gtids event of MySQL.
func (s *Source) fileStartState(ctx context.Context, file string) (position.GTIDState, error) {
	evs, err := s.showEvents(ctx, file, 4, 4)
	if err != nil {
		return position.GTIDState{}, err
	}
	var st position.GTIDState
	for _, ev := range evs {
		switch strings.ToLower(ev.Type) {
		case "gtid_list":
			for _, g := range strings.Split(strings.Trim(strings.TrimSpace(ev.Info), "[]"), ",") {
				if g = strings.TrimSpace(g); g != "" {
					st.Add(g)
				}
			}
			return st, nil
		case "previous_gtids":
			return position.ParseGTIDState(ev.Info)
		}
	}
	return st, nil
}

// gtidOfEvent is the GTID a Gtid event of SHOW BINLOG EVENTS names:
// MariaDB "BEGIN GTID 0-1-42 cid=7" / "GTID 0-1-42", MySQL
// "SET @@SESSION.GTID_NEXT= 'uuid:42'"; "" for an anonymous one.
func gtidOfEvent(ev binlogEvent) string {
	info := ev.Info
	if i := strings.IndexByte(info, '\''); i >= 0 {
		g, _, _ := strings.Cut(info[i+1:], "'")
		if strings.EqualFold(g, "ANONYMOUS") {
			return ""
		}
		return g
	}
	fields := strings.Fields(info)
	for i, f := range fields {
		if strings.EqualFold(f, "GTID") && i+1 < len(fields) {
			return fields[i+1]
		}
	}
	return ""
}

// GTIDBehindError refuses to resume on a server that lacks transactions the
// checkpoint's GTID state holds: they were published from the old server
// and would be missing from this one's history.
type GTIDBehindError struct {
	Addr, Want, Have, Missing string
}

func (e *GTIDBehindError) Error() string {
	return fmt.Sprintf("MySQL at %s does not hold every transaction the checkpoint has published (checkpoint GTID state %s, the server's %s; missing: %s): "+
		"it is a replica that was behind when the primary failed, a replica with log_slave_updates off, or a server of another topology, "+
		"and dbsync will not guess where to go on", e.Addr, e.Want, e.Have, e.Missing)
}

// Fix implements failure.Fixer.
func (e *GTIDBehindError) Fix() string {
	return "point Mysql.Host (or Mysql.Hosts) at a server that holds those transactions: the replica that received them, promoted, " +
		"with log_slave_updates=ON (MySQL: log_replica_updates); if they are lost with the failed primary, re-sync the consumers " +
		"from a snapshot and reset the checkpoint (producer checkpoint reset)"
}
