package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
)

// SnapshotOptions tune snapshots (config Snapshot).
type SnapshotOptions struct {
	// Initial snapshots every included table on a first start.
	Initial bool
	// ChunkRows is how many rows a chunk reads; default 4096.
	ChunkRows int
	// Pause is a wait between chunks.
	Pause time.Duration
	// RefuseKeyless refuses tables without a usable key instead of reading
	// them in one go.
	RefuseKeyless bool
	// ProgressEvery is how often progress is logged; default 5s.
	ProgressEvery time.Duration
	// Include reports whether a table is published; a snapshot of another
	// table is refused. Nil accepts all.
	Include func(db, table string) bool
}

// SnapshotSource is a Source that can read tables' existing rows.
type SnapshotSource interface {
	// SnapshotTables lists the included tables (an initial snapshot's).
	SnapshotTables(ctx context.Context) ([][2]string, error)
	// OpenSnapshot opens a reader on a connection of its own.
	OpenSnapshot(ctx context.Context) (SnapshotReader, error)
}

// SnapshotReader reads tables in chunks; a *binlog.SnapshotReader is one.
type SnapshotReader interface {
	Plan(ctx context.Context, db, table string) (*binlog.SnapshotPlan, error)
	ReadChunk(ctx context.Context, plan *binlog.SnapshotPlan, after []position.KeyValue, n int) (*binlog.SnapshotChunk, error)
	Close()
}

func (s binlogSource) SnapshotTables(ctx context.Context) ([][2]string, error) {
	return s.Source.Tables(ctx)
}

func (s binlogSource) OpenSnapshot(ctx context.Context) (SnapshotReader, error) {
	return binlog.OpenSnapshotReader(ctx, s.cfg, s.log.WithField("component", "snapshot"))
}

// maxChunkRetries bounds how often one chunk is read again because a
// change during its read could not be matched to a row.
const maxChunkRetries = 20

// newSnapshotID returns a fresh snapshot id.
func newSnapshotID() string { return "snap-" + position.NewHistory() }

// newSnapshot is the state of a snapshot of tables ("db.table"), not begun.
func newSnapshot(tables [][2]string) *position.Snapshot {
	s := &position.Snapshot{ID: newSnapshotID()}
	for _, t := range tables {
		s.Tables = append(s.Tables, position.SnapshotTable{DB: t[0], Table: t[1]})
	}
	return s
}

// checkPlans plans every table of state on a reader of its own: a missing
// table or (with RefuseKeyless) one without a usable key is an error
// naming it; tables read in one go are returned for a warning.
func (p *Producer) checkPlans(ctx context.Context, tables [][2]string) (keyless []string, err error) {
	ss, ok := p.src.(SnapshotSource)
	if !ok {
		return nil, errors.New("this source cannot take snapshots")
	}
	rd, err := ss.OpenSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var errs []error
	for _, t := range tables {
		plan, err := rd.Plan(ctx, t[0], t[1])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if plan.Keyless() {
			if p.opts.Snapshot.RefuseKeyless {
				errs = append(errs, failure.WithFix(fmt.Errorf("snapshot of %s.%s: %w", t[0], t[1], binlog.ErrKeyless),
					"add a primary key, or set Snapshot.Keyless to \"read\" to read the table in one go"))
				continue
			}
			keyless = append(keyless, t[0]+"."+t[1])
		}
	}
	return keyless, errors.Join(errs...)
}

// snapshotControl connects the operators' commands (start, cancel,
// status) with the snapshot of the running pass.
type snapshotControl struct {
	mu sync.Mutex
	// requested is a snapshot asked for and not yet begun by a pass.
	requested *position.Snapshot
	// cancelID names the snapshot whose cancellation was asked for.
	cancelID string
	notify   chan struct{}
	// current is the running snapshot's progress as last published, with
	// each table's estimated rows; last describes the last one finished.
	current   *position.Snapshot
	estimates map[string]int64
	started   time.Time
	last      string
}

func newSnapshotControl() *snapshotControl {
	return &snapshotControl{notify: make(chan struct{}, 1), estimates: map[string]int64{}}
}

func (c *snapshotControl) poke() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// request asks for a snapshot of tables; it fails while one runs or
// waits.
func (c *snapshotControl) request(s *position.Snapshot) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != nil || c.requested != nil {
		id := ""
		if c.current != nil {
			id = c.current.ID
		} else {
			id = c.requested.ID
		}
		return fmt.Errorf("snapshot %s is running: wait until it is done, or cancel it first (producer snapshot cancel)", id)
	}
	c.requested = s
	c.poke()
	return nil
}

// cancel asks the running (or waiting) snapshot to stop; it returns its id.
func (c *snapshotControl) cancel() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.requested != nil {
		id := c.requested.ID
		c.requested = nil
		c.last = fmt.Sprintf("%s cancelled before it began", id)
		return id, nil
	}
	if c.current == nil {
		return "", errors.New("no snapshot is running")
	}
	c.cancelID = c.current.ID
	c.poke()
	return c.current.ID, nil
}

func (c *snapshotControl) cancelled(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cancelID == id
}

// resume makes s (the checkpoint's snapshot of a new pass, nil for none)
// the running one.
func (c *snapshotControl) resume(s *position.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == nil && c.current != nil {
		c.last = c.current.ID + " ended with the previous pass (its progress was not in the checkpoint)"
	}
	c.current = s.Clone()
	if s == nil || c.cancelID != s.ID {
		c.cancelID = ""
	}
}

// putBack returns a taken request that could not begin.
func (c *snapshotControl) putBack(s *position.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.requested == nil {
		c.requested = s
	}
}

// take returns the requested snapshot, if any, as begun.
func (c *snapshotControl) take() *position.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.requested
	c.requested = nil
	return s
}

// progress records the running snapshot's state (nil: finished, with how).
func (c *snapshotControl) progress(s *position.Snapshot, finished string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s != nil && c.current == nil {
		c.started = time.Now()
	}
	c.current = s.Clone()
	if s == nil {
		c.last = finished
		c.cancelID = ""
	}
}

// SnapshotStatus is what "producer snapshot status" shows.
type SnapshotStatus struct {
	Running bool                  `json:"running"`
	ID      string                `json:"id,omitempty"`
	Started time.Time             `json:"started,omitzero"`
	Tables  []SnapshotTableStatus `json:"tables,omitempty"`
	Waiting bool                  `json:"waiting,omitempty"`
	Last    string                `json:"last,omitempty"`
}

// SnapshotTableStatus is one table's line of the status.
type SnapshotTableStatus struct {
	Table     string `json:"table"`
	Rows      int64  `json:"rows"`
	Estimated int64  `json:"estimated"`
	Chunks    int    `json:"chunks"`
	Done      bool   `json:"done"`
}

func (c *snapshotControl) status() SnapshotStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := SnapshotStatus{Last: c.last, Waiting: c.requested != nil}
	s := c.current
	if s == nil && c.requested != nil {
		s = c.requested
	}
	if s == nil {
		return st
	}
	st.Running, st.ID, st.Started = c.current != nil, s.ID, c.started
	for _, t := range s.Tables {
		name := t.DB + "." + t.Table
		st.Tables = append(st.Tables, SnapshotTableStatus{Table: name, Rows: t.Rows, Estimated: c.estimates[name], Chunks: t.Chunks, Done: t.Done})
	}
	return st
}

// snapshotRun reads the snapshots of one pass and hands their chunks to
// the pass's reader through feed.
type snapshotRun struct {
	p    *Producer
	feed *binlog.SnapshotFeed
	log  logrus.FieldLogger

	// published and acked count the snapshot rows handed to the reader
	// and acknowledged by the broker in this pass; ackedNote wakes a
	// wait for acknowledgements.
	published int64
	acked     atomic.Int64
	ackedNote chan struct{}
}

// acknowledged counts n snapshot rows of an acknowledged batch.
func (s *snapshotRun) acknowledged(n int) {
	if n == 0 {
		return
	}
	s.acked.Add(int64(n))
	select {
	case s.ackedNote <- struct{}{}:
	default:
	}
}

// awaitAcks waits until at most limit of the published snapshot rows are
// not acknowledged yet: a snapshot reads ahead of the broker by a chunk,
// not by the memory budget.
func (s *snapshotRun) awaitAcks(ctx context.Context, limit int64) error {
	for s.published-s.acked.Load() > limit {
		select {
		case <-s.ackedNote:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// run resumes state (the checkpoint's snapshot, nil for none) and then
// begins each requested snapshot, until ctx is done. A failed read ends
// the pass (the next one resumes at the chunk after the last published).
func (s *snapshotRun) run(ctx context.Context, state *position.Snapshot) error {
	ss, ok := s.p.src.(SnapshotSource)
	if !ok {
		return nil
	}
	var rd SnapshotReader
	defer func() {
		if rd != nil {
			rd.Close()
		}
	}()
	ctl := s.p.snap
	// The checkpoint this pass starts from says what runs, whatever the
	// previous pass last reported.
	ctl.resume(state)
	if cur := state.Current(); cur != nil {
		s.log.WithFields(logrus.Fields{"snapshot": state.ID, "table": cur.DB + "." + cur.Table, "next_chunk": cur.Chunks + 1, "rows_done": cur.Rows}).
			Info("snapshot resumed from the checkpoint")
	}
	for {
		if state == nil {
			state = ctl.take()
			if state == nil {
				select {
				case <-ctl.notify:
					continue
				case <-ctx.Done():
					return nil
				}
			}
			// Saved with the next checkpoint: a restart resumes it.
			if _, err := s.feed.SetState(ctx, state); err != nil {
				ctl.putBack(state) // the next pass begins it
				return nil
			}
			s.log.WithFields(logrus.Fields{"snapshot": state.ID, "tables": tableList(state)}).Info("snapshot started")
		}
		ctl.progress(state, "")
		if rd == nil {
			var err error
			if rd, err = ss.OpenSnapshot(ctx); err != nil {
				return fmt.Errorf("snapshot %s: %w", state.ID, err)
			}
		}
		finished, err := s.snapshot(ctx, rd, state)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		ctl.progress(nil, finished)
		s.p.mon.SnapshotProgress(false, 0)
		state = nil
	}
}

// inflight is a chunk handed to the reader and not published yet.
type inflight struct {
	pending *binlog.Pending
	// before is the progress without it (where a retry reads again),
	// after the progress once it is published (nil: the snapshot is
	// complete).
	before, after *position.Snapshot
	table         string
	rows          int64 // the table's rows read once it is published
	estimated     int64
	last          bool
}

// snapshot reads state's tables chunk by chunk until every one is done or
// the snapshot is cancelled; it returns how it finished. The next chunk is
// read while the previous one waits for its boundary and the broker.
func (s *snapshotRun) snapshot(ctx context.Context, rd SnapshotReader, state *position.Snapshot) (string, error) {
	opts := s.p.opts.Snapshot
	id := state.ID
	plans := map[[2]string]*binlog.SnapshotPlan{}
	progress := newSnapshotProgress(s.log, opts.ProgressEvery)
	retries := 0
	var fly *inflight
	// land waits for the chunk in flight; retry says it must be read again
	// (state is then where it starts).
	land := func() (retry bool, err error) {
		f := fly
		fly = nil
		res, err := f.pending.Wait(ctx)
		if err != nil {
			return false, err
		}
		if res.Retry {
			retries++
			if retries > maxChunkRetries {
				return false, fmt.Errorf("snapshot %s of %s: the table changed during each of %d reads of a chunk in a way the chunk could not be reconciled with (a change without the key columns, or a keyless table); the next pass tries again",
					id, f.table, retries)
			}
			state = f.before
			return true, nil
		}
		retries = 0
		s.published += int64(res.Published)
		db, table, _ := strings.Cut(f.table, ".")
		s.p.mon.SnapshotPublished(db, table, res.Published)
		progress.chunk(id, f.table, f.rows, f.estimated, f.last, res)
		if f.after != nil {
			s.p.snap.progress(f.after, "")
			s.p.mon.SnapshotProgress(true, remaining(f.after, s.p.snap))
		}
		return false, nil
	}
	for {
		if s.p.snap.cancelled(id) {
			if fly != nil {
				if _, err := land(); err != nil {
					return "", err
				}
			}
			if _, err := s.feed.SetState(ctx, nil); err != nil {
				return "", err
			}
			s.log.WithField("snapshot", id).Warn("snapshot cancelled; its progress is removed from the checkpoint")
			return id + " cancelled", nil
		}
		cur := state.Current()
		if cur == nil {
			if fly == nil {
				s.log.WithFields(logrus.Fields{"snapshot": id}).Info("snapshot complete")
				return id + " done", nil
			}
			if _, err := land(); err != nil {
				return "", err
			}
			continue
		}
		key := [2]string{cur.DB, cur.Table}
		plan := plans[key]
		if plan == nil {
			var err error
			plan, err = rd.Plan(ctx, cur.DB, cur.Table)
			if errors.Is(err, binlog.ErrNoSuchTable) {
				if fly != nil {
					// The chunk before must be published (or read
					// again) before the progress moves past it.
					if _, err := land(); err != nil {
						return "", err
					}
					continue
				}
				s.log.WithFields(logrus.Fields{"snapshot": id, "table": cur.DB + "." + cur.Table}).Error("table is gone; skipping it in the snapshot")
				next := state.Clone()
				next.Current().Done = true
				if next.Current() == nil {
					next = nil
				}
				if _, err := s.feed.SetState(ctx, next); err != nil {
					return "", err
				}
				state = next
				continue
			}
			if err != nil {
				return "", failure.Permanent(fmt.Errorf("snapshot %s: %w", id, err))
			}
			if plan.Keyless() {
				if opts.RefuseKeyless {
					return "", failure.WithFix(failure.Permanent(fmt.Errorf("snapshot %s of %s.%s: %w", id, cur.DB, cur.Table, binlog.ErrKeyless)),
						"add a primary key, set Snapshot.Keyless to \"read\", or cancel the snapshot (producer snapshot cancel)")
				}
				s.log.WithFields(logrus.Fields{"snapshot": id, "table": cur.DB + "." + cur.Table}).
					Warn("table has no primary key and no unique key over NOT NULL columns: reading it in one go, its rows held in memory at once")
			}
			plans[key] = plan
			s.p.snap.mu.Lock()
			s.p.snap.estimates[cur.DB+"."+cur.Table] = plan.EstimatedRows
			s.p.snap.mu.Unlock()
		}
		var keyCols []string
		if !plan.Keyless() {
			keyCols = plan.KeyColumns()
		}
		w := s.feed.Open(cur.DB, cur.Table, keyCols)
		chunk, err := rd.ReadChunk(ctx, plan, cur.After, max(opts.ChunkRows, 1))
		if err != nil {
			s.feed.Close(w)
			return "", err
		}
		if fly != nil {
			retry, err := land()
			if err != nil {
				s.feed.Close(w)
				return "", err
			}
			if retry {
				s.feed.Close(w) // read after a chunk that is read again
				continue
			}
		}
		// One chunk may be on its way to the broker while this one is
		// handed over; the next waits for it.
		if err := s.awaitAcks(ctx, int64(max(opts.ChunkRows, 1))); err != nil {
			s.feed.Close(w)
			return "", err
		}
		next := state.Clone()
		nt := next.Current()
		nt.After, nt.Rows, nt.Chunks, nt.Done = chunk.After, nt.Rows+int64(chunk.Rows), nt.Chunks+1, chunk.Last
		ref := envelope.SnapshotRef{ID: id, Chunk: nt.Chunks, Last: chunk.Last}
		fly = &inflight{before: state, table: cur.DB + "." + cur.Table, rows: nt.Rows, estimated: plan.EstimatedRows, last: chunk.Last}
		if next.Current() == nil {
			next = nil // complete: the checkpoint no longer carries it
		}
		fly.after = next
		fly.pending = s.feed.Submit(chunk, w, ref, cur.Rows, next)
		state = next
		if opts.Pause > 0 {
			select {
			case <-time.After(opts.Pause):
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
	}
}

// remaining estimates the rows the snapshot has still to read.
func remaining(s *position.Snapshot, ctl *snapshotControl) int64 {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	var n int64
	for _, t := range s.Tables {
		if !t.Done {
			n += max(ctl.estimates[t.DB+"."+t.Table]-t.Rows, 0)
		}
	}
	return n
}

func tableList(s *position.Snapshot) string {
	names := make([]string, len(s.Tables))
	for i, t := range s.Tables {
		names[i] = t.DB + "." + t.Table
	}
	return strings.Join(names, ",")
}

// snapshotProgress logs a table's progress every few seconds and when it
// is done.
type snapshotProgress struct {
	log        logrus.FieldLogger
	every      time.Duration
	table      string
	since      time.Time
	sinceRows  int64
	lastLogged time.Time
}

func newSnapshotProgress(log logrus.FieldLogger, every time.Duration) *snapshotProgress {
	if every <= 0 {
		every = 5 * time.Second
	}
	return &snapshotProgress{log: log, every: every}
}

func (p *snapshotProgress) chunk(id, table string, rows, estimated int64, last bool, res binlog.FeedResult) {
	now := time.Now()
	if table != p.table {
		p.table, p.since, p.sinceRows, p.lastLogged = table, now, rows-int64(res.Published+res.Dropped), now
	}
	if !last && now.Sub(p.lastLogged) < p.every {
		return
	}
	p.lastLogged = now
	elapsed := now.Sub(p.since).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(rows-p.sinceRows) / elapsed
	}
	f := logrus.Fields{"snapshot": id, "table": table, "rows": rows, "estimated_rows": estimated, "rows_per_sec": int64(rate), "at": res.At.String()}
	if estimated > 0 {
		f["percent"] = min(100, int(100*rows/max(estimated, 1)))
		if rate > 0 && estimated > rows {
			f["eta"] = (time.Duration(float64(estimated-rows)/rate) * time.Second).Round(time.Second).String()
		}
	}
	if last {
		p.log.WithFields(f).Info("snapshot: table done")
		return
	}
	p.log.WithFields(f).Info("snapshot progress")
}
