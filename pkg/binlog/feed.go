package binlog

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/position"
)

// SnapshotFeed hands snapshot chunks to a running Reader, which publishes
// each one in binlog order with the live changes (the DBLog watermark
// method):
//
//  1. Open starts a window on a table: from then on the Reader notes the
//     key of every change of the table it reads.
//  2. The chunk is read (SnapshotReader.ReadChunk) and Submit hands it over
//     with its window and watermarks.
//  3. Once the Reader's stream is at a transaction boundary at or after
//     the chunk's High watermark, it drops from the chunk every row the
//     stream changed after the chunk's Low watermark (the stream carried
//     a newer version of it, or its deletion) and publishes the rest
//     there, as "read" changes. A row a consumer receives from the chunk
//     is therefore as the table held it at that boundary, so applying
//     everything in order gives exactly the table.
//
// A table may have two windows open (the next chunk is read while the
// previous one waits for its boundary). One feed serves one Reader pass.
// Its methods are safe for concurrent use.
type SnapshotFeed struct {
	// watching is the number of open windows: the reader's fast path.
	watching atomic.Int32
	// ready is set while an item waits to be published.
	ready atomic.Bool

	mu      sync.Mutex
	windows map[tableName][]*Window
	pending []*feedItem
	// fresh is set when an item was submitted since the reader last
	// looked; wake interrupts the reader's wait for the next binlog event.
	fresh bool
	wake  context.CancelFunc
}

// Window collects the keys of a table's changes while a chunk is read.
type Window struct {
	table tableName
	key   []string // the chunking key's column names; nil for the whole row
	// changed maps a changed row's key (JSON) to the position of its last
	// change.
	changed map[string]position.Position
	// unknown is set when a change's key could not be told (its image
	// lacks a key column): the chunk must be read again.
	unknown bool
	// plans caches the key's column indexes per binlog decoding plan.
	plans map[*table][]int
}

// feedItem is a submitted chunk (or, with chunk nil, a change of the
// snapshot state alone) waiting for the reader.
type feedItem struct {
	chunk  *SnapshotChunk
	window *Window
	ref    envelope.SnapshotRef
	// first is the row number of the chunk's first row.
	first int64
	state *position.Snapshot
	done  chan FeedResult
}

// FeedResult is what became of a submitted item.
type FeedResult struct {
	// At is the boundary it was published at.
	At position.Position
	// Published and Dropped count the chunk's rows published and left to
	// the stream's newer changes.
	Published, Dropped int
	// Retry says the chunk was not published: a change of the table
	// during the read could not be matched to a row. Read it again.
	Retry bool
}

// Pending is a submitted item the Reader has not published yet.
type Pending struct{ done chan FeedResult }

// Wait returns what became of the item, or ctx's error when ctx is done
// first.
func (p *Pending) Wait(ctx context.Context) (FeedResult, error) {
	select {
	case r := <-p.done:
		return r, nil
	case <-ctx.Done():
		return FeedResult{}, ctx.Err()
	}
}

// NewSnapshotFeed returns an empty feed.
func NewSnapshotFeed() *SnapshotFeed {
	return &SnapshotFeed{windows: map[tableName][]*Window{}}
}

// Open starts noting the changes of db.name by key (the chunking key's
// columns; nil notes whole rows, for a table without a key), for the chunk
// read next. Call it before the chunk's Low watermark is read; hand the
// window to Submit with the chunk, or to Close when the chunk is dropped.
func (f *SnapshotFeed) Open(db, name string, key []string) *Window {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &Window{table: tableName{db, name}, key: key, changed: map[string]position.Position{}, plans: map[*table][]int{}}
	f.windows[w.table] = append(f.windows[w.table], w)
	f.watching.Add(1)
	return w
}

// Close stops a window whose chunk is not submitted.
func (f *SnapshotFeed) Close(w *Window) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closeLocked(w)
}

func (f *SnapshotFeed) closeLocked(w *Window) {
	ws := f.windows[w.table]
	for i, x := range ws {
		if x == w {
			f.windows[w.table] = append(ws[:i:i], ws[i+1:]...)
			f.watching.Add(-1)
			break
		}
	}
	if len(f.windows[w.table]) == 0 {
		delete(f.windows, w.table)
	}
}

// Submit hands over a chunk read in window w; Pending.Wait says when the
// Reader published it (or asks for it again, FeedResult.Retry). first is
// the row number of its first row, ref its envelopes' source.snapshot, and
// state the snapshot's progress once it is published (nil: the snapshot is
// complete), saved with the checkpoints from its boundary on. Chunks are
// published in the order they are submitted.
func (f *SnapshotFeed) Submit(c *SnapshotChunk, w *Window, ref envelope.SnapshotRef, first int64, state *position.Snapshot) *Pending {
	return f.submit(&feedItem{chunk: c, window: w, ref: ref, first: first, state: state, done: make(chan FeedResult, 1)})
}

// SetState makes state the snapshot progress saved with the checkpoints
// from the Reader's next transaction boundary on (nil: no snapshot runs),
// and waits until it is. It fails when ctx is done first.
func (f *SnapshotFeed) SetState(ctx context.Context, state *position.Snapshot) (FeedResult, error) {
	return f.submit(&feedItem{state: state, done: make(chan FeedResult, 1)}).Wait(ctx)
}

func (f *SnapshotFeed) submit(it *feedItem) *Pending {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, it)
	f.fresh = true
	f.ready.Store(true)
	if f.wake != nil {
		f.wake()
	}
	return &Pending{done: it.done}
}

// setWake installs the reader's wake-up; it fires at once when an item
// came since the reader last looked.
func (f *SnapshotFeed) setWake(cancel context.CancelFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wake = cancel
	if f.fresh {
		cancel()
	}
}

// settle marks the submitted items as seen without taking them: the
// reader publishes them at its next boundary, and is not woken again for
// them meanwhile.
func (f *SnapshotFeed) settle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fresh = false
}

// take removes and returns the items that can be published at boundary
// at, in order, closing their windows.
func (f *SnapshotFeed) take(at position.Position) []*feedItem {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fresh = false
	var items []*feedItem
	for len(f.pending) > 0 {
		it := f.pending[0]
		if it.chunk != nil && at.Compare(it.chunk.High) < 0 {
			break
		}
		f.pending = f.pending[1:]
		if it.window != nil {
			f.closeLocked(it.window)
		}
		items = append(items, it)
	}
	f.ready.Store(len(f.pending) > 0)
	return items
}

// note records the keys of one rows event's changes of t at pos in t's
// open windows.
func (f *SnapshotFeed) note(t *table, e *replication.RowsEvent, pos position.Position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.windows[tableName{t.db, t.name}] {
		w.note(t, e, pos)
	}
}

func (w *Window) note(t *table, e *replication.RowsEvent, pos position.Position) {
	if w.key == nil {
		// Rows without a key cannot be told apart: the chunk (the whole
		// table) is read again.
		w.unknown = true
		return
	}
	idx, ok := w.plans[t]
	if !ok {
		for _, k := range w.key {
			found := false
			for i := range t.columns {
				if t.columns[i].name == k {
					idx = append(idx, i)
					found = true
				}
			}
			if !found {
				idx = nil // the table changed under the snapshot
				break
			}
		}
		w.plans[t] = idx
	}
	if idx == nil {
		w.unknown = true
		return
	}
	// An update's images come in pairs, before then after; with
	// binlog_row_image=MINIMAL an after image holds only the changed
	// columns, so one without the key did not change it.
	update := e.Type() == replication.EnumRowsEventTypeUpdate
	for i, image := range e.Rows {
		skip := skipped(e, i)
		missing := false
		for _, k := range idx {
			if contains(skip, k) || k >= len(image) {
				missing = true
			}
		}
		if missing && update && i%2 == 1 {
			continue
		}
		if missing {
			w.unknown = true
			return
		}
		key, err := keyOf(t, idx, image)
		if err != nil {
			w.unknown = true
			return
		}
		w.changed[key] = pos
	}
}

// emitSnapshots publishes the submitted items whose time has come, at the
// stream's boundary st.at (see SnapshotFeed).
func (r *Reader) emitSnapshots(ctx context.Context, st *streamState, send func(*Event) error) error {
	feed := r.cfg.Snapshots
	if feed == nil || !feed.ready.Load() || st.at.IsZero() {
		return nil
	}
	for _, it := range feed.take(st.at) {
		at := st.at
		at.Snapshot = it.state
		if it.chunk == nil {
			r.snap = it.state
			if err := send(&Event{Boundary: true, Flush: true, Position: at, Time: time.Now()}); err != nil {
				return err
			}
			it.done <- FeedResult{At: at}
			continue
		}
		if it.window == nil || it.window.unknown {
			it.done <- FeedResult{At: at, Retry: true}
			continue
		}
		ev, dropped, err := r.snapshotEvent(st, it)
		if err != nil {
			return err
		}
		ev.Position = at
		r.snap = it.state
		if r.cfg.Reserve != nil && ev.Bytes > 0 {
			if err := r.cfg.Reserve(ctx, ev.Bytes); err != nil {
				return err
			}
		}
		if err := send(ev); err != nil {
			return err
		}
		it.done <- FeedResult{At: at, Published: len(ev.Rows), Dropped: dropped}
	}
	return nil
}

// snapshotEvent frames a chunk's rows that the stream did not change since
// the chunk's Low watermark as "read" envelopes at st.at.
func (r *Reader) snapshotEvent(st *streamState, it *feedItem) (*Event, int, error) {
	c := it.chunk
	t := c.Plan.t
	if t.prev == nil {
		t.prev = r.prevSlot(t.db, t.name)
	}
	now := time.Now().UTC()
	ref := it.ref
	src := &envelope.Source{Name: r.cfg.SourceName, ServerID: st.serverID, History: r.history, Continues: r.continues, File: st.at.File, Pos: st.at.Pos,
		GTID: st.gtid, TS: now, Snapshot: &ref}
	prefix := st.at.File + ":" + strconv.FormatUint(uint64(st.at.Pos), 10) + ":"
	rows := make([]Row, 0, c.Rows)
	ends := make([]int, 0, c.Rows)
	size := 0
	for _, img := range c.images {
		size += len(img)
	}
	head := 200 + len(t.head) + len(t.pkJSON) + len(r.cfg.SourceName) + 2*len(st.at.File) + len(st.gtid) + len(r.history) + len(r.continues) + len(ref.ID)
	buf := make([]byte, 0, size+c.Rows*head)
	dropped := 0
	for i, img := range c.images {
		if p, ok := it.window.changed[c.Keys[i]]; ok && (c.Low.IsZero() || p.Compare(c.Low) >= 0) {
			dropped++
			continue
		}
		n := int(it.first) + i
		id := prefix + strconv.Itoa(n)
		buf = appendHead(buf, t, id, *t.prev, envelope.TypeRead, src, n)
		buf = append(buf, `,"after":`...)
		buf = append(buf, img...)
		buf = append(buf, '}')
		*t.prev = id
		rows = append(rows, Row{DB: t.db, Table: t.name, Type: envelope.TypeRead, ID: id, Event: src, Index: n})
		ends = append(ends, len(buf))
	}
	start := 0
	for i := range rows {
		rows[i].Data = buf[start:ends[i]:ends[i]]
		start = ends[i]
	}
	return &Event{Rows: rows, Bytes: len(buf), Boundary: true, Time: now}, dropped, nil
}
