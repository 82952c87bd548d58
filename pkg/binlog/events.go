package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/redact"
)

// eventsPage is how many events one SHOW BINLOG EVENTS query reads: a
// binlog is read in pages, never whole.
const eventsPage = 10000

// binlogEvent is one row of SHOW BINLOG EVENTS.
type binlogEvent struct {
	Pos, End uint64
	Type     string
	Info     string
}

// showEvents reads up to n events of file starting at from, which must be
// the start of an event (the server refuses other offsets).
func (s *Source) showEvents(ctx context.Context, file string, from uint64, n int) ([]binlogEvent, error) {
	r, err := s.execute(ctx, fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d LIMIT %d", strings.ReplaceAll(file, "'", ""), from, n))
	if err != nil {
		return nil, err
	}
	evs := make([]binlogEvent, r.RowNumber())
	for i := range evs {
		evs[i].Pos, _ = r.GetUint(i, 1)
		evs[i].Type, _ = r.GetString(i, 2)
		evs[i].End, _ = r.GetUint(i, 4)
		info, _ := r.GetString(i, 5)
		evs[i].Info = strings.TrimSpace(info)
	}
	return evs, nil
}

// eachEvent calls fn with the events of file from its start, a page of
// eventsPage events at a time, until fn returns false or the file ends.
func (s *Source) eachEvent(ctx context.Context, file string, fn func(binlogEvent) bool) error {
	size := s.eventsPage
	if size <= 0 {
		size = eventsPage
	}
	from := uint64(4)
	for {
		page, err := s.showEvents(ctx, file, from, size)
		if err != nil {
			return err
		}
		for _, ev := range page {
			if !fn(ev) {
				return nil
			}
		}
		if len(page) < size {
			return nil
		}
		last := page[len(page)-1]
		if last.End <= last.Pos {
			return fmt.Errorf("MySQL at %s: SHOW BINLOG EVENTS IN '%s': event at %d ends at %d; cannot read on", s.cfg.addr(), file, last.Pos, last.End)
		}
		from = last.End
	}
}

// startsGroup reports whether a transaction (or a statement logged on its
// own) may be resumed from at ev: a GTID event (MariaDB's, MySQL's, MySQL's
// anonymous one), a BEGIN query when the binlog has no GTID events
// (withGTIDs false; with them, the transaction starts at the GTID event
// before its BEGIN), or an event that opens or closes a binlog file.
func startsGroup(ev binlogEvent, withGTIDs bool) bool {
	switch {
	case isGTIDEvent(ev):
		return true
	case strings.EqualFold(ev.Type, "Query"):
		return !withGTIDs && queryKind(ev.Info) == queryBegin
	}
	switch strings.ToLower(ev.Type) {
	case "format_desc", "rotate", "stop", "gtid_list", "binlog_checkpoint", "previous_gtids", "start_encryption":
		return true
	}
	return false
}

func isGTIDEvent(ev binlogEvent) bool {
	return strings.EqualFold(ev.Type, "Gtid") || strings.EqualFold(ev.Type, "Anonymous_Gtid")
}

// gtidProbeEvents bounds how many events hasGTIDs reads.
const gtidProbeEvents = 1000

// hasGTIDs reports whether file's transactions start with GTID events: its
// first transaction (within gtidProbeEvents events) does.
func (s *Source) hasGTIDs(ctx context.Context, file string) (bool, error) {
	found, n := false, 0
	err := s.eachEvent(ctx, file, func(ev binlogEvent) bool {
		n++
		if isGTIDEvent(ev) {
			found = true
			return false
		}
		return !strings.EqualFold(ev.Type, "Query") && n < gtidProbeEvents
	})
	return found, err
}

// boundaryScanPages bounds how far the search for the boundaries next to
// a refused position reads (pages of eventsPage events).
const boundaryScanPages = 50

// CheckBoundary verifies that pos is a place to resume streaming from: the
// start of an event that begins a transaction (a GTID event, MySQL's
// anonymous GTID event, or a BEGIN query on a server without GTID events),
// of an event that opens or closes the binlog file (format description,
// GTID list, previous GTIDs, binlog checkpoint, rotate, stop), or the end of
// the file. pos's file must be on the server (CheckResumable). A position
// inside an event or inside a transaction is a permanent error naming the
// event found there and, when the first boundaryScanPages pages of the file
// hold them, the nearest boundaries before and after pos; a failed query is
// returned as it is.
func (s *Source) CheckBoundary(ctx context.Context, pos position.Position) error {
	evs, err := s.showEvents(ctx, pos.File, uint64(pos.Pos), 1)
	var me *mysql.MyError
	switch {
	case errors.As(err, &me) && me.Code == errWrongOffset:
		return s.notBoundary(ctx, pos, fmt.Sprintf("no event starts there (the server says: %s)", me.Message))
	case err != nil:
		return err
	case len(evs) == 0:
		return nil // the end of the file: the next event is written there
	case evs[0].Pos != uint64(pos.Pos):
		return s.notBoundary(ctx, pos, fmt.Sprintf("the server lists the event at %d instead", evs[0].Pos))
	case !startsGroup(evs[0], false):
		return s.notBoundary(ctx, pos, fmt.Sprintf("the event there (%s%s) is inside a transaction", evs[0].Type, infoSuffix(evs[0].Type, evs[0].Info)))
	case strings.EqualFold(evs[0].Type, "Query"):
		// A BEGIN: the boundary only when no GTID event precedes it.
		withGTIDs, err := s.hasGTIDs(ctx, pos.File)
		if err != nil {
			return err
		}
		if withGTIDs {
			return s.notBoundary(ctx, pos, "the event there (Query: BEGIN) follows its transaction's GTID event, where the transaction starts")
		}
	}
	return nil
}

// errWrongOffset is ER_ERROR_WHEN_EXECUTING_COMMAND, SHOW BINLOG EVENTS'
// answer to an offset where no event starts ("Wrong offset or I/O error");
// other errors (a missing privilege) are not about the position.
const errWrongOffset = 1220

// notBoundary is CheckBoundary's error for pos, with the nearest
// boundaries around it.
func (s *Source) notBoundary(ctx context.Context, pos position.Position, why string) error {
	var before, after, lastEnd uint64
	scanned, withGTIDs := 0, false
	err := s.eachEvent(ctx, pos.File, func(ev binlogEvent) bool {
		scanned++
		lastEnd = ev.End
		withGTIDs = withGTIDs || isGTIDEvent(ev)
		if ev.Pos > uint64(pos.Pos) && startsGroup(ev, withGTIDs) {
			after = ev.Pos
			return false
		}
		if ev.Pos < uint64(pos.Pos) && startsGroup(ev, withGTIDs) {
			before = ev.Pos
		}
		return scanned < boundaryScanPages*eventsPage
	})
	if err == nil && after == 0 && scanned < boundaryScanPages*eventsPage && lastEnd > uint64(pos.Pos) {
		after = lastEnd // the end of the file
	}
	near := ""
	switch {
	case err != nil:
	case before != 0 && after != 0:
		near = fmt.Sprintf("; the nearest transaction boundaries are %s:%d before and %s:%d after", pos.File, before, pos.File, after)
	case before != 0:
		near = fmt.Sprintf("; the nearest transaction boundary before it is %s:%d", pos.File, before)
	}
	return failure.WithFix(failure.Permanent(fmt.Errorf("%s is not a transaction boundary on MySQL at %s: %s%s", pos, s.cfg.addr(), why, near)),
		"set the checkpoint to a transaction boundary: a position SHOW MASTER STATUS printed, the End_log_pos of an Xid or COMMIT event, "+
			"or use checkpoint set -gtid with the GTID of the last transaction already published")
}

// infoSuffix names an event by its SHOW BINLOG EVENTS Info: a statement
// by its kind and object only (its text may hold another account's
// password: CREATE USER ... IDENTIFIED BY), anything else cut short.
func infoSuffix(typ, info string) string {
	if info == "" {
		return ""
	}
	if strings.EqualFold(typ, "Query") {
		d := redact.SummarizeDDL(info)
		return ": " + strings.TrimSpace(d.Kind+" "+d.Object)
	}
	return ": " + truncate(redact.Statement(info), 60)
}
