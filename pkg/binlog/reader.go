package binlog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/internal/failpoint"
	"github.com/dbsync/dbsync/internal/logging"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/redact"
)

// Row is one encoded row change.
type Row struct {
	DB, Table string
	// Type is the change type: insert, update or delete.
	Type string
	// ID is the envelope id, "file:pos:row".
	ID string
	// Event is the coordinate of the rows event the change is in, shared
	// by the event's rows (its Row is 0); Index is the change's row in it.
	Event *envelope.Source
	Index int
	// Data is the JSON envelope; nil when Unpublishable is set.
	Data []byte
	// Unpublishable says why the change cannot be published; it is set only
	// for the tables Config.SkipUnpublishable accepts.
	Unpublishable string
}

// Source returns the change's coordinate, as in its envelope.
func (r *Row) Source() envelope.Source {
	s := *r.Event
	s.Row = r.Index
	return s
}

// Event is what the Reader hands on: the rows of one binlog rows event, or
// a transaction boundary, or the rows of a transaction's last rows event
// followed by its boundary.
type Event struct {
	// Rows holds the encoded changes of one rows event, in binlog order.
	Rows []Row
	// Bytes is the total size of Rows' data.
	Bytes int
	// Boundary is set when Position is a transaction boundary: everything
	// before it is complete, and reading may resume there.
	Boundary bool
	// Position is where reading resumes after this event (boundaries only).
	Position position.Position
	// Flush asks for the pending batch to be published and checkpointed now
	// (binlog rotation, DDL).
	Flush bool
	// Rotate marks the boundary of a binlog rotation (not a transaction).
	Rotate bool
	// Time is the event's binlog timestamp.
	Time time.Time
}

// Reader streams one server's binlog as decoded, encoded row changes.
type Reader struct {
	cfg    Config
	src    Catalog
	log    logrus.FieldLogger
	tables map[uint64]*table
	infos  map[string]*infoTable
	// excluded caches table ids whose rows are not published, with the
	// table each names.
	excluded map[uint64]tableName
	// prev holds, per table, the id of the last change handed on in this
	// pass (the next envelope's "prev"); it outlives table maps and DDL.
	prev map[[2]string]*string
	// history is the binlog history id of the pass (the start
	// position's), continues the history it continues after a failover;
	// serverID is the source server's server_id (the start position's).
	history, continues string
	serverID           uint32
	// snap is the progress of the running snapshot, saved with every
	// boundary's checkpoint (nil when none runs).
	snap *position.Snapshot
}

// Catalog is what the reader asks the server besides the binlog stream:
// its flavor, its collations' character sets and a table's columns and
// primary key. A *Source is one.
type Catalog interface {
	Flavor() string
	collationCharsets(ctx context.Context) (map[uint64]string, error)
	tableInfo(ctx context.Context, db, name string) (*infoTable, error)
}

// NewReader returns a Reader that asks src for table metadata. src must
// stay open while the Reader runs.
func NewReader(cfg Config, src Catalog, log logrus.FieldLogger) *Reader {
	return &Reader{cfg: cfg, src: src, log: log}
}

// Run streams from start (a transaction boundary) into out until ctx is done,
// an error occurs, or stop is closed: then it finishes the transaction it is
// in (its events are already in the binlog), sends that boundary, and returns
// nil. Errors that retrying cannot fix are permanent (pkg/failure).
func (r *Reader) Run(ctx context.Context, start position.Position, stop <-chan struct{}, out chan<- Event) error {
	r.forgetTableIDs()
	r.infos = map[string]*infoTable{}
	r.prev = map[[2]string]*string{}
	r.history, r.continues, r.serverID = start.History, start.Continues, start.ServerID
	r.snap = start.Snapshot
	collations, err := r.src.collationCharsets(ctx)
	if err != nil {
		return err
	}
	buffer := r.cfg.EventBuffer
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	newSyncer := func(tlsCfg *tls.Config, guard *authGuard) *replication.BinlogSyncer {
		timeout := r.cfg.ConnectTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		return replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
			ServerID:  r.cfg.ServerID,
			Flavor:    r.src.Flavor(),
			Host:      r.cfg.Host,
			Port:      r.cfg.Port,
			User:      r.cfg.User,
			Password:  r.cfg.Password,
			TLSConfig: tlsCfg,
			// The read timeout is the connection's (idleConn): go-mysql's
			// sets a deadline on every packet.
			Dialer:                  guard.idleDialer(timeout, tlsCfg == nil, r.cfg.ReadTimeout, r.cfg.HeartbeatPeriod),
			Charset:                 r.cfg.Charset,
			HeartbeatPeriod:         r.cfg.HeartbeatPeriod,
			TimestampStringLocation: time.UTC,
			ParseTime:               true, // time.Time: no Sprintf per DATETIME value
			RenderJSONAsMySQLText:   true,
			DisableRetrySync:        true, // the producer resumes from its checkpoint instead
			Logger:                  logging.Slog(r.log),
			EventCacheCount:         buffer,
			VerifyChecksum:          true,
		})
	}
	guard, usedTLS := &authGuard{}, r.cfg.TLS
	syncer := newSyncer(usedTLS, guard)
	startSync := func(syncer *replication.BinlogSyncer) (*replication.BinlogStreamer, error) {
		if !r.cfg.ResumeByGTID || start.GTID == "" {
			return syncer.StartSync(mysql.Position{Name: start.File, Pos: start.Pos})
		}
		// After a failover: the server sends what the GTID state lacks
		// (MySQL's COM_BINLOG_DUMP_GTID, MariaDB's slave_connect_state).
		set, err := mysql.ParseGTIDSet(r.src.Flavor(), start.GTID)
		if err != nil {
			return nil, failure.Permanent(fmt.Errorf("checkpoint %s: its GTID state is not a %s GTID set: %w", start, r.src.Flavor(), err))
		}
		return syncer.StartSyncGTID(set)
	}
	streamer, err := startSync(syncer)
	if err != nil && r.cfg.TLS != nil && r.cfg.tlsOptional() && serverLacksTLS(err) {
		syncer.Close()
		r.log.WithField("addr", r.cfg.addr()).Info("the server offers no TLS: streaming the binlog unencrypted, as TLS mode preferred allows")
		guard, usedTLS = &authGuard{}, nil
		syncer = newSyncer(nil, guard)
		streamer, err = startSync(syncer)
	}
	defer func() { syncer.Close() }()
	if err != nil {
		if err2 := r.cfg.connectError(err, usedTLS != nil, guard); err2 != err {
			err = err2
		} else {
			err = r.cfg.classifyDump(fmt.Errorf("start binlog stream at %s: %w", start, err))
		}
		r.streamState(false, err)
		return err
	}
	// The server answers the dump request with its first event (a rotate
	// naming the file) or an error; only the first is a started stream.
	accepted := false
	defer func() {
		if accepted {
			r.streamState(false, errors.New("binlog stream stopped"))
		}
	}()

	// readCtx is cancelled on stop, so a reader idle at a boundary returns.
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-readCtx.Done():
		}
	}()

	skip, err := position.ParseGTIDState(r.cfg.SkipGTIDs)
	if err != nil {
		return failure.Permanent(fmt.Errorf("transactions to skip: %w", err))
	}
	st := &streamState{file: start.File, gtids: newGTIDTracker(start.GTID, skip), at: start, txSkip: r.cfg.SkipTxRows.Rows}
	stopping := false
	// held is a rows event kept until the next event is read, so that the
	// transaction boundary that usually follows it travels with it: one
	// hand-over per single-row transaction instead of two.
	var held *Event
	send := func(ev *Event) error {
		select {
		case out <- *ev:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// With a snapshot feed, the wait for the next binlog event is cut
	// short when a chunk arrives, so that an idle stream publishes it.
	waitCtx := readCtx
	rearm := func() {
		if feed := r.cfg.Snapshots; feed != nil {
			c, wake := context.WithCancel(readCtx)
			waitCtx = c
			feed.setWake(wake)
		}
	}
	rearm()
	for {
		getCtx := waitCtx
		if stopping {
			getCtx = ctx
		}
		ev, err := streamer.GetEvent(getCtx)
		if err != nil && errors.Is(err, context.Canceled) && !stopping && waitCtx.Err() != nil && readCtx.Err() == nil && ctx.Err() == nil {
			// Woken for a snapshot chunk (a stream error waiting at the
			// same time is not taken for one: it is not Canceled).
			if accepted && !st.inTx && held == nil {
				rearm()
				if err := r.emitSnapshots(ctx, st, send); err != nil {
					return err
				}
			} else {
				// Inside a transaction: the chunk waits for its end.
				r.cfg.Snapshots.settle()
				rearm()
			}
			continue
		}
		if err == nil && !accepted {
			accepted = true
			r.log.WithFields(logrus.Fields{"position": start.String(), "encrypted": usedTLS != nil}).Info("binlog stream started")
			r.streamState(true, nil)
			// The stream starts at a transaction boundary: a chunk
			// submitted while it was starting (its wake-up came before
			// the stream did) is published here, not at the next
			// transaction, which an idle server may never write.
			if err := r.emitSnapshots(ctx, st, send); err != nil {
				return err
			}
		}
		if err != nil {
			if !accepted && ctx.Err() == nil && readCtx.Err() == nil {
				err = r.cfg.classifyDump(fmt.Errorf("binlog stream at %s: the server did not start it: %w", start, err))
				r.streamState(false, err)
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if readCtx.Err() != nil && !stopping {
				if !st.inTx {
					if held != nil {
						return send(held)
					}
					return nil
				}
				stopping = true // finish the open transaction first
				continue
			}
			return r.cfg.classify(fmt.Errorf("binlog stream at %s:%d: %w", st.file, st.lastPos, err))
		}
		out1, err := r.handle(ctx, st, ev, collations)
		if err != nil {
			return err
		}
		if out1 == nil {
			if stopping && !st.inTx {
				if held != nil {
					return send(held)
				}
				return nil
			}
			continue
		}
		fresh := true // not the held event, whose bytes are reserved
		if held != nil {
			if out1.Boundary && len(out1.Rows) == 0 {
				held.Boundary, held.Flush, held.Rotate = true, out1.Flush, out1.Rotate
				held.Position, held.Time = out1.Position, out1.Time
				out1, fresh = held, false
			} else if err := send(held); err != nil {
				return err
			}
			held = nil
		}
		// Reserved only once nothing is held back: a reservation may wait
		// for the bytes handed on before it to be published and released.
		if fresh && r.cfg.Reserve != nil && out1.Bytes > 0 {
			if err := r.cfg.Reserve(ctx, out1.Bytes); err != nil {
				return err
			}
		}
		if len(out1.Rows) > 0 && !out1.Boundary {
			held = out1
			continue
		}
		if err := send(out1); err != nil {
			return err
		}
		if out1.Boundary && (stopping || readCtx.Err() != nil) {
			return nil
		}
		if out1.Boundary {
			if err := r.emitSnapshots(ctx, st, send); err != nil {
				return err
			}
		}
	}
}

func (r *Reader) streamState(connected bool, err error) {
	if r.cfg.OnStreamState != nil {
		r.cfg.OnStreamState(connected, err)
	}
}

// streamState tracks where the stream is.
type streamState struct {
	file    string
	lastPos uint32
	// gtid is the GTID of the transaction being read (the envelopes'
	// source.gtid); gtids the GTID state (the checkpoints').
	gtid  string
	gtids *gtidTracker
	inTx  bool
	// txSkip counts the rows of Config.SkipTxRows's transaction still to
	// skip.
	txSkip int
	// at is the last place outside a transaction the stream passed (a
	// boundary, or the end of a binlog file's header events): where a
	// snapshot chunk can be published. serverID is the last event's.
	at       position.Position
	serverID uint32
	// payload is set while the events of a compressed transaction
	// (MySQL's binlog_transaction_compression) are handled.
	payload *payloadState
}

// payloadState places the rows of a compressed transaction: every one at
// the start of the payload event, numbered on across its rows events.
type payloadState struct {
	pos  uint32
	rows int
}

// handle turns one binlog event into what the pipeline needs, or nil.
func (r *Reader) handle(ctx context.Context, st *streamState, ev *replication.BinlogEvent, collations map[uint64]string) (*Event, error) {
	h := ev.Header
	if h.LogPos != 0 {
		st.lastPos = h.LogPos
	}
	st.serverID = h.ServerID
	boundary := func(flush bool) *Event {
		st.inTx = false
		if h.LogPos == 0 {
			return nil
		}
		st.at = r.position(st, st.file, h.LogPos)
		return &Event{Boundary: true, Flush: flush, Time: time.Unix(int64(h.Timestamp), 0), Position: st.at}
	}
	switch e := ev.Event.(type) {
	case *replication.FormatDescriptionEvent:
		// A binlog file starts. The server that wrote it may have been
		// restarted since the previous one: it numbers tables afresh.
		r.forgetTableIDs()
		r.passHeader(st, h)
	case *replication.MariadbGTIDListEvent, *replication.MariadbBinlogCheckPointEvent, *replication.PreviousGTIDsEvent:
		r.passHeader(st, h)
	case *replication.RotateEvent:
		next := string(e.NextLogName)
		if h.Timestamp == 0 || h.LogPos == 0 {
			// A fake rotate at stream start only names the file.
			st.file = next
			return nil, nil
		}
		st.file = next
		st.lastPos = uint32(e.Position)
		st.inTx = false
		st.at = r.position(st, next, uint32(e.Position))
		return &Event{Boundary: true, Flush: true, Rotate: true, Time: time.Unix(int64(h.Timestamp), 0), Position: st.at}, nil
	case *replication.MariadbGTIDEvent:
		st.gtid = mariadbGTID(e.GTID)
		st.gtids.addMariaDB(e.GTID, st.gtid)
		st.inTx = !e.IsStandalone()
	case *replication.GTIDEvent:
		st.gtid = mysqlGTID(e)
		st.gtids.addMySQL(st.gtid)
	case *replication.GtidTaggedLogEvent:
		st.gtid = mysqlGTID(&e.GTIDEvent)
		st.gtids.addMySQL(st.gtid)
	case *replication.TransactionPayloadEvent:
		return r.payload(ctx, st, h, e, collations)
	case *replication.GenericEvent:
		if h.EventType == replication.XA_PREPARE_LOG_EVENT {
			// The end of an XA transaction's first phase: its rows are in
			// the binlog, the group is complete.
			return boundary(false), nil
		}
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		switch queryKind(q) {
		case queryBegin:
			st.inTx = true
		case queryCommit:
			return boundary(false), nil
		case queryInTx:
			// SAVEPOINT, XA START/END: framing inside a transaction.
			st.inTx = true
		case queryOther:
			if st.inTx {
				break // a statement logged inside a transaction
			}
			// DDL (or another statement logged on its own): the table
			// definitions may have changed.
			r.forgetTableIDs()
			r.infos = map[string]*infoTable{}
			r.logDDL(string(e.Schema), q, fmt.Sprintf("%s:%d", st.file, h.LogPos))
			return boundary(true), nil
		}
	case *replication.XIDEvent:
		return boundary(false), nil
	case *replication.TableMapEvent:
		return nil, r.mapTable(ctx, st, h, e, collations)
	case *replication.RowsEvent:
		if st.gtids.skipping {
			return nil, nil // published before, from the server failed over from
		}
		out, err := r.rows(st, h, e)
		if err == nil && out != nil && st.txSkip > 0 && st.gtid == r.cfg.SkipTxRows.GTID {
			out = dropFirstRows(out, &st.txSkip)
		}
		return out, err
	}
	return nil, nil
}

// payload handles the events of a compressed transaction (MySQL's
// TRANSACTION_PAYLOAD_EVENT, decompressed by go-mysql) as one event: its
// rows, at the payload event's start and numbered across its rows events
// so that coordinates stay unique and ordered, and its boundary at the
// payload's end.
func (r *Reader) payload(ctx context.Context, st *streamState, h *replication.EventHeader, e *replication.TransactionPayloadEvent, collations map[uint64]string) (*Event, error) {
	if len(e.Events) == 0 && e.UncompressedSize > 0 {
		return nil, failure.Permanent(fmt.Errorf("compressed transaction at %s:%d: nothing decoded from its %d bytes", st.file, h.LogPos-h.EventSize, e.UncompressedSize))
	}
	st.payload = &payloadState{pos: h.LogPos - h.EventSize}
	defer func() { st.payload = nil }()
	var merged *Event
	for _, inner := range e.Events {
		out, err := r.handle(ctx, st, inner, collations)
		if err != nil {
			return nil, err
		}
		if out == nil {
			continue
		}
		if merged == nil {
			merged = out
			continue
		}
		merged.Rows = append(merged.Rows, out.Rows...)
		merged.Bytes += out.Bytes
		if out.Boundary {
			merged.Boundary, merged.Flush, merged.Position, merged.Time = true, out.Flush, out.Position, out.Time
		}
	}
	return merged, nil
}

// passHeader moves st.at past a binlog file's header event read outside a
// transaction.
func (r *Reader) passHeader(st *streamState, h *replication.EventHeader) {
	at := r.position(st, st.file, h.LogPos)
	// Only forward: a stream started inside a file first replays the
	// file's header events.
	if !st.inTx && h.LogPos != 0 && at.Compare(st.at) > 0 {
		st.at = at
	}
}

// dropFirstRows removes up to *left rows from the front of ev, counting
// them off *left; nil when none is left of ev.
func dropFirstRows(ev *Event, left *int) *Event {
	n := min(len(ev.Rows), *left)
	for _, row := range ev.Rows[:n] {
		ev.Bytes -= len(row.Data)
	}
	ev.Rows = ev.Rows[n:]
	*left -= n
	if len(ev.Rows) == 0 && !ev.Boundary {
		return nil
	}
	return ev
}

// position is the checkpoint at file:pos of the stream, with its GTID
// state.
func (r *Reader) position(st *streamState, file string, pos uint32) position.Position {
	return position.Position{File: file, Pos: pos, GTID: st.gtids.text, ServerID: r.serverID, History: r.history, Continues: r.continues, Snapshot: r.snap}
}

// mysqlGTID renders a MySQL GTID event's GTID, or "" for the anonymous
// transactions of a server with gtid_mode=OFF.
func mysqlGTID(e *replication.GTIDEvent) string {
	next, err := e.GTIDNext()
	if err != nil {
		return ""
	}
	g := next.String()
	if strings.HasPrefix(g, "00000000-0000-0000-0000-000000000000") {
		return ""
	}
	return g
}

// logDDL logs a statement logged on its own by kind and object; its text,
// which may hold other accounts' passwords (CREATE USER ... IDENTIFIED BY),
// only at debug level and with those hidden.
func (r *Reader) logDDL(schema, q, position string) {
	sum := redact.SummarizeDDL(q)
	l := r.log.WithFields(logrus.Fields{"schema": schema, "kind": sum.Kind, "object": sum.Object, "position": position})
	l.Info("DDL")
	l.WithField("query", truncate(redact.Statement(q), 200)).Debug("DDL text")
}

type queryClass int

const (
	queryOther  queryClass = iota // DDL or another statement logged on its own
	queryBegin                    // opens a transaction
	queryCommit                   // ends one: a boundary
	queryInTx                     // framing inside a transaction
)

// queryKind classifies a Query event's statement for transaction framing.
func queryKind(q string) queryClass {
	upper := strings.ToUpper(q)
	switch {
	case upper == "BEGIN", strings.HasSuffix(upper, "START TRANSACTION"):
		// MySQL 8.0.21+ logs CREATE TABLE ... SELECT as
		// "CREATE TABLE ... START TRANSACTION", rows, XID.
		return queryBegin
	case upper == "COMMIT", upper == "ROLLBACK", strings.HasPrefix(upper, "XA COMMIT"), strings.HasPrefix(upper, "XA ROLLBACK"):
		return queryCommit
	case strings.HasPrefix(upper, "XA START"), strings.HasPrefix(upper, "XA BEGIN"), strings.HasPrefix(upper, "XA END"),
		strings.HasPrefix(upper, "SAVEPOINT"), strings.HasPrefix(upper, "ROLLBACK TO"), strings.HasPrefix(upper, "RELEASE SAVEPOINT"):
		return queryInTx
	}
	return queryOther
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// mapTable builds (or reuses) the decoding plan of a table map. A table
// whose rows cannot be published stops the reader, unless
// Config.SkipUnpublishable accepts it: its rows are then handed on as
// Unpublishable markers.
func (r *Reader) mapTable(ctx context.Context, st *streamState, h *replication.EventHeader, tm *replication.TableMapEvent, collations map[uint64]string) error {
	// (The conversions in the comparisons do not allocate.)
	if t, ok := r.tables[tm.TableID]; ok && t.db == string(tm.Schema) && t.name == string(tm.Table) {
		return nil
	}
	if x, ok := r.excluded[tm.TableID]; ok && x.db == string(tm.Schema) && x.name == string(tm.Table) {
		return nil
	}
	db, name := string(tm.Schema), string(tm.Table)
	key := db + "." + name
	// A table id names one table only while its server runs: drop what
	// this id named before.
	delete(r.tables, tm.TableID)
	delete(r.excluded, tm.TableID)
	if r.cfg.Include != nil && !r.cfg.Include(db, name) {
		r.excluded[tm.TableID] = tableName{db, name}
		return nil
	}
	info, ok := r.infos[key]
	if !ok {
		var err error
		info, err = r.src.tableInfo(ctx, db, name)
		if err != nil {
			return fmt.Errorf("read the definition of %s: %w", key, err)
		}
		r.infos[key] = info
	}
	t, err := buildTable(tm, info, collations)
	var se *SchemaError
	if errors.As(err, &se) && se.Unpublishable {
		if r.cfg.SkipUnpublishable != nil && r.cfg.SkipUnpublishable(db, name) {
			r.log.WithFields(logrus.Fields{"table": key, "reason": se.Reason, "position": fmt.Sprintf("%s:%d", st.file, h.LogPos)}).
				Error("table cannot be published; its changes go to the dead-letter subject (Tables.OnUnpublishable skip)")
			t, err = &table{db: db, name: name, unpublishable: se.Reason}, nil
		} else {
			err = failure.WithFix(fmt.Errorf("%w (at binlog %s:%d)", err, st.file, h.LogPos-h.EventSize),
				"to publish a marker on the dead-letter subject instead and go on, set Tables.OnUnpublishable to skip for "+key)
		}
	}
	if err != nil {
		return failure.Permanent(err)
	}
	t.prev = r.prevSlot(db, name)
	r.tables[tm.TableID] = t
	return nil
}

// mariadbGTID formats g as go-mysql's MariadbGTID.String does
// ("domain-server-sequence", "" for the zero GTID), without fmt: it runs
// once per transaction.
func mariadbGTID(g mysql.MariadbGTID) string {
	if g.DomainID == 0 && g.ServerID == 0 && g.SequenceNumber == 0 {
		return ""
	}
	var buf [64]byte
	b := strconv.AppendUint(buf[:0], uint64(g.DomainID), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(g.ServerID), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, g.SequenceNumber, 10)
	return string(b)
}

// forgetTableIDs empties the caches keyed by table id: the ids a server
// gives tables are valid only until it restarts (a new binlog file) and a
// DDL may change what an id decodes to.
func (r *Reader) forgetTableIDs() {
	r.tables = map[uint64]*table{}
	r.excluded = map[uint64]tableName{}
}

// tableName is a table's database and name.
type tableName struct{ db, name string }

// prevSlot returns the table's "last change id" slot of this pass.
func (r *Reader) prevSlot(db, name string) *string {
	k := [2]string{db, name}
	p, ok := r.prev[k]
	if !ok {
		p = new(string)
		r.prev[k] = p
	}
	return p
}

// rows encodes the rows of one rows event into envelopes sharing one buffer.
func (r *Reader) rows(st *streamState, h *replication.EventHeader, e *replication.RowsEvent) (*Event, error) {
	if _, skip := r.excluded[e.TableID]; skip {
		return nil, nil
	}
	t, ok := r.tables[e.TableID]
	if !ok {
		return nil, failure.Permanent(fmt.Errorf("rows event at %s:%d for table id %d without its table map", st.file, h.LogPos-h.EventSize, e.TableID))
	}
	var typ string
	step := 1
	switch h.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		typ = envelope.TypeInsert
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		typ = envelope.TypeUpdate
		step = 2
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		typ = envelope.TypeDelete
	default:
		return nil, nil
	}
	pos := h.LogPos - h.EventSize
	base := 0 // the first row's number
	if pl := st.payload; pl != nil {
		pos, base = pl.pos, pl.rows
		pl.rows += len(e.Rows) / step
	}
	if feed := r.cfg.Snapshots; feed != nil && feed.watching.Load() > 0 && t.unpublishable == "" {
		feed.note(t, e, position.Position{File: st.file, Pos: pos})
	}
	ts := time.Unix(int64(h.Timestamp), 0).UTC()
	n := len(e.Rows) / step
	rows := make([]Row, n)
	event := &envelope.Source{Name: r.cfg.SourceName, ServerID: h.ServerID, History: r.history, Continues: r.continues, File: st.file, Pos: pos, GTID: st.gtid, TS: ts}
	// Row ids are "file:pos:row", each built with one allocation.
	var idBuf [64]byte
	prefix := append(append(idBuf[:0], st.file...), ':')
	prefix = append(strconv.AppendUint(prefix, uint64(pos), 10), ':')
	rowID := func(row int) string { return string(strconv.AppendInt(prefix, int64(row), 10)) }
	if t.unpublishable != "" {
		for i := range rows {
			rows[i] = Row{DB: t.db, Table: t.name, Type: typ, ID: rowID(base + i), Event: event, Index: base + i, Unpublishable: t.unpublishable}
		}
		return &Event{Rows: rows, Time: ts}, nil
	}
	ends := make([]int, n)
	// One buffer for the event's envelopes, sized from this table's average
	// envelope so it rarely grows (growing copies it and wastes the rest).
	buf := make([]byte, 0, n*t.envelopeSize(len(r.cfg.SourceName)+2*len(st.file)+len(st.gtid)+len(r.history)+len(r.continues)+int(h.EventSize)*step/max(n, 1)))
	for i := 0; i < n; i++ {
		id := rowID(base + i)
		var before, after []any
		var skipBefore, skipAfter []int
		switch typ {
		case envelope.TypeInsert:
			after, skipAfter = e.Rows[i], skipped(e, i)
		case envelope.TypeDelete:
			before, skipBefore = e.Rows[i], skipped(e, i)
		default:
			before, skipBefore = e.Rows[2*i], skipped(e, 2*i)
			after, skipAfter = e.Rows[2*i+1], skipped(e, 2*i+1)
		}
		var err error
		buf, err = r.appendEnvelope(buf, t, id, *t.prev, typ, event, base+i, before, after, skipBefore, skipAfter)
		if err != nil {
			return nil, failure.Permanent(fmt.Errorf("row %s: %w", id, err))
		}
		*t.prev = id
		rows[i] = Row{DB: t.db, Table: t.name, Type: typ, ID: id, Event: event, Index: base + i}
		ends[i] = len(buf)
	}
	t.observe(len(buf), n)
	failpoint.Hit("after-decode")
	if st.inTx {
		failpoint.Hit("in-transaction")
	}
	start := 0
	for i := range rows {
		rows[i].Data = buf[start:ends[i]:ends[i]]
		start = ends[i]
	}
	return &Event{Rows: rows, Bytes: len(buf), Time: ts}, nil
}

func skipped(e *replication.RowsEvent, i int) []int {
	if i < len(e.SkippedColumns) {
		return e.SkippedColumns[i]
	}
	return nil
}

// appendEnvelope writes one envelope v1 (docs/envelope.md), keys in a fixed
// order, for row number row of the rows event at src. prev is the id of the
// table's previous change in this pass ("" for none).
func (r *Reader) appendEnvelope(b []byte, t *table, id, prev, typ string, src *envelope.Source, row int,
	before, after []any, skipBefore, skipAfter []int) ([]byte, error) {
	b = appendHead(b, t, id, prev, typ, src, row)
	var err error
	if before != nil {
		b = append(b, `,"before":`...)
		if b, err = appendImage(b, t, before, skipBefore); err != nil {
			return nil, err
		}
	}
	if after != nil {
		b = append(b, `,"after":`...)
		if b, err = appendImage(b, t, after, skipAfter); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendHead writes an envelope up to its row images: version, id,
// source, prev, db, table, type, pk and binary.
func appendHead(b []byte, t *table, id, prev, typ string, src *envelope.Source, row int) []byte {
	b = append(b, `{"v":1,"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"source":{"name":`...)
	b = appendJSONString(b, src.Name)
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(src.ServerID), 10)
	if src.History != "" {
		b = append(b, `,"history":`...)
		b = appendJSONString(b, src.History)
	}
	if src.Continues != "" {
		b = append(b, `,"continues":`...)
		b = appendJSONString(b, src.Continues)
	}
	b = append(b, `,"file":`...)
	b = appendJSONString(b, src.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(src.Pos), 10)
	b = append(b, `,"row":`...)
	b = strconv.AppendInt(b, int64(row), 10)
	if src.GTID != "" {
		b = append(b, `,"gtid":`...)
		b = appendJSONString(b, src.GTID)
	}
	b = append(b, `,"ts":"`...)
	if src.TS.Location() == time.UTC {
		b = timeLayout{utc: true}.appendTime(b, src.TS) // RFC 3339 in UTC
	} else {
		b = src.TS.AppendFormat(b, time.RFC3339)
	}
	b = append(b, '"')
	if ref := src.Snapshot; ref != nil {
		b = append(b, `,"snapshot":{"id":`...)
		b = appendJSONString(b, ref.ID)
		b = append(b, `,"chunk":`...)
		b = strconv.AppendInt(b, int64(ref.Chunk), 10)
		if ref.Last {
			b = append(b, `,"last":true`...)
		}
		b = append(b, '}')
	}
	b = append(b, `},`...)
	if prev != "" {
		b = append(b, `"prev":`...)
		b = appendJSONString(b, prev)
		b = append(b, ',')
	}
	b = append(b, t.head...)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	b = append(b, `",`...)
	return append(b, t.pkJSON...)
}

// appendImage writes a row image as a JSON object, columns in table order,
// leaving out columns absent from the image.
func appendImage(b []byte, t *table, values []any, skip []int) ([]byte, error) {
	b = append(b, '{')
	first := true
	for i := range t.columns {
		if i >= len(values) {
			break
		}
		if contains(skip, i) {
			continue
		}
		c := &t.columns[i]
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, c.key...)
		var err error
		if b, err = appendValue(b, c, values[i]); err != nil {
			return nil, &ValueError{DB: t.db, Table: t.name, Column: c.name, Reason: err.Error()}
		}
	}
	return append(b, '}'), nil
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
