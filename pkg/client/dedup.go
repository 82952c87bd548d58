package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/position"
)

// Coordinate is where a change sits in the source's binlog: its history
// (which source, which binlog history, which binlog base name) and its place
// in it. Coordinates of one history are ordered; coordinates of different
// histories are not.
type Coordinate struct {
	// Source is the envelope's source.name.
	Source string `json:"source,omitempty"`
	// History is the envelope's source.history ("" from producers that
	// predate it).
	History string `json:"history,omitempty"`
	// ServerID is the server_id of the server that executed the change
	// (informational: it differs between changes of one history on a
	// replica).
	ServerID uint32 `json:"server_id,omitempty"`
	File     string `json:"file"`
	Pos      uint32 `json:"pos"`
	Row      int    `json:"row"`
	// GTID is the change's transaction's GTID (source.gtid), Continues
	// the history its history continues after a source failover
	// (source.continues); both empty when the producer did not say.
	GTID      string `json:"gtid,omitempty"`
	Continues string `json:"continues,omitempty"`
	// Snapshot is set on a snapshot's row (type "read"), whose GTID is
	// only the last transaction before it.
	Snapshot bool `json:"snapshot,omitempty"`
}

// CoordinateOf returns the coordinate of an envelope.
func CoordinateOf(e *envelope.Envelope) Coordinate {
	s := e.Source
	return Coordinate{Source: s.Name, History: s.History, ServerID: s.ServerID, File: s.File, Pos: s.Pos, Row: s.Row, GTID: s.GTID, Continues: s.Continues, Snapshot: s.Snapshot != nil}
}

// ID is the change id the coordinate belongs to ("file:pos:row").
func (c Coordinate) ID() string {
	return c.File + ":" + strconv.FormatUint(uint64(c.Pos), 10) + ":" + strconv.Itoa(c.Row)
}

// Compare returns -1, 0 or 1 as c is before, equal to or after d in one
// binlog history (see SameHistory).
func (c Coordinate) Compare(d Coordinate) int {
	if r := (position.Position{File: c.File, Pos: c.Pos}).Compare(position.Position{File: d.File, Pos: d.Pos}); r != 0 {
		return r
	}
	switch {
	case c.Row < d.Row:
		return -1
	case c.Row > d.Row:
		return 1
	}
	return 0
}

// SameHistory reports whether c and d can be compared: the same source, the
// same binlog history and the same binlog base name. A coordinate saved
// before source and history were recorded is taken as the same history when
// the base names agree. When they differ, why names what differs.
func (c Coordinate) SameHistory(d Coordinate) (same bool, why string) {
	switch {
	case c.Source != "" && d.Source != "" && c.Source != d.Source:
		return false, fmt.Sprintf("source %q, then %q", c.Source, d.Source)
	case c.History != "" && d.History != "" && c.History != d.History:
		return false, fmt.Sprintf("binlog history %s, then %s (the producer's checkpoint moved to another history: RESET MASTER, or another server)", c.History, d.History)
	case binlogBase(c.File) != binlogBase(d.File):
		return false, fmt.Sprintf("binlog base name %q, then %q (the server's log_bin base name changed, or another server)", binlogBase(c.File), binlogBase(d.File))
	}
	return true, ""
}

func (c Coordinate) String() string { return c.ID() }

// binlogBase is a binlog file name without its numeric suffix.
func binlogBase(file string) string {
	if i := strings.LastIndexByte(file, '.'); i >= 0 {
		return file[:i]
	}
	return file
}

// Gap is an open interval of one history between two changes a subscription
// handed over one after the other while the producer did not publish them
// one after the other (the first change of a producer pass, or a change
// whose "prev" names one the subscription never saw): a change that arrives
// later with a coordinate inside it was never handed over, and is.
type Gap struct {
	After  Coordinate `json:"after"`
	Before Coordinate `json:"before"`
}

func (g Gap) holds(c Coordinate) bool { return c.Compare(g.After) > 0 && c.Compare(g.Before) < 0 }

// maxGaps bounds Progress.Gaps; beyond it the two oldest merge (which can
// only make a very old replay be handed over again, never drop a change).
const maxGaps = 16

// Progress is what a subscription remembers of a subject: the last change
// it handed over and the gaps before it where a change may still arrive.
type Progress struct {
	Last Coordinate `json:"last"`
	Gaps []Gap      `json:"gaps,omitempty"`
	// GTIDs is the last GTID handed over per origin (MariaDB domain, MySQL
	// server uuid), comma-separated: across a source failover, where
	// coordinates change, a change whose GTID is not after its origin's
	// is a replay.
	GTIDs string `json:"gtids,omitempty"`
	// Tx is the GTID of the last change handed over and TxRows how many
	// changes of that transaction were handed over on the subject;
	// Replayed counts those seen again in a continuing history. A
	// transaction cut by a failover comes again from its first row on
	// the new server: its first TxRows changes are replays, the rest new.
	Tx       string `json:"tx,omitempty"`
	TxRows   int    `json:"tx_rows,omitempty"`
	Replayed int    `json:"replayed,omitempty"`
}

// judgement is what Progress.judge decided about one change.
type judgement int

const (
	handOver     judgement = iota // new: hand it over
	duplicate                     // a replay of a change handed over before: drop it
	late                          // older than Last but never handed over: hand it over, reported
	otherHistory                  // from another history than Last: reported; handed over unless the subscription stops
)

// judge decides about the change at c whose envelope names prev, and
// returns the progress to save once it is handed over. A change is dropped
// only when it is provably a replay: in the same history, at or before the
// last one handed over, and not inside a gap.
func (p Progress) judge(c Coordinate, prev string) (judgement, Progress, string) {
	if p.Last.File == "" {
		return handOver, Progress{Last: c}, ""
	}
	if same, why := p.Last.SameHistory(c); !same {
		if c.Continues != "" && c.Continues == p.Last.History && c.Source == p.Last.Source {
			return p.continued(c)
		}
		return otherHistory, Progress{Last: c, GTIDs: addGTIDMark("", c.GTID)}.counted(c, p), why
	}
	if p.Last.Source == "" && p.Last.History == "" {
		// Saved before histories were recorded: adopt this one.
		p.Last.Source, p.Last.History = c.Source, c.History
	}
	if c.Compare(p.Last) > 0 {
		next := Progress{Last: c, Gaps: p.Gaps, GTIDs: addGTIDMark(p.gtidMarks(), c.GTID)}.counted(c, p)
		if prev != p.Last.ID() {
			next.Gaps = addGap(p.Gaps, Gap{After: p.Last, Before: c})
		}
		return handOver, next, ""
	}
	for i, g := range p.Gaps {
		if g.holds(c) {
			next := Progress{Last: p.Last, Gaps: append([]Gap(nil), p.Gaps...), GTIDs: addGTIDMark(p.gtidMarks(), c.GTID)}
			next.Gaps[i].After = c // the replay goes on in order after c
			return late, next, ""
		}
	}
	return duplicate, p, ""
}

// continued judges a change of a history that continues the last one
// handed over (the producer failed over to another server): by GTID, its
// coordinates being the new server's. A transaction before the last one's
// (per origin) is a replay; the last one's first TxRows changes are
// replays, the rest of it new; a snapshot row is handed over.
func (p Progress) continued(c Coordinate) (judgement, Progress, string) {
	marks := p.gtidMarks()
	switch {
	case c.Snapshot || c.GTID == "":
	case c.GTID == p.Tx && p.Replayed < p.TxRows:
		p.Replayed++
		return duplicate, p, ""
	case c.GTID != p.Tx && gtidCovered(marks, c.GTID):
		return duplicate, p, ""
	}
	next := Progress{Last: c, GTIDs: addGTIDMark(marks, c.GTID), Tx: p.Tx, TxRows: p.TxRows}
	return handOver, next.counted(c, p), ""
}

// counted returns next with its transaction count moved on by c, the
// change it records, handed over after prev.
func (next Progress) counted(c Coordinate, prev Progress) Progress {
	switch {
	case c.Snapshot:
		next.Tx, next.TxRows = prev.Tx, prev.TxRows
	case c.GTID != "" && c.GTID == prev.Tx:
		next.Tx, next.TxRows = prev.Tx, prev.TxRows+1
	default:
		next.Tx, next.TxRows = c.GTID, 1
	}
	next.Replayed = 0
	return next
}

// gtidMarks is p.GTIDs, or the last change's GTID for progress saved
// before GTIDs were kept.
func (p Progress) gtidMarks() string {
	if p.GTIDs == "" {
		return p.Last.GTID
	}
	return p.GTIDs
}

// gtidOrigin splits a GTID into its origin (MariaDB "domain", MySQL "uuid")
// and its number; ok is false for anything else.
func gtidOrigin(gtid string) (origin string, n uint64, ok bool) {
	if uuid, num, found := strings.Cut(gtid, ":"); found {
		n, err := strconv.ParseUint(num, 10, 64)
		return "u" + strings.ToLower(uuid), n, err == nil
	}
	parts := strings.Split(gtid, "-")
	if len(parts) != 3 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(parts[2], 10, 64)
	return "d" + parts[0], n, err == nil
}

// gtidCovered reports whether gtid is at or before its origin's mark.
func gtidCovered(marks, gtid string) bool {
	origin, n, ok := gtidOrigin(gtid)
	if !ok {
		return false
	}
	for _, m := range strings.Split(marks, ",") {
		if o, mn, ok := gtidOrigin(m); ok && o == origin {
			return n <= mn
		}
	}
	return false
}

// addGTIDMark makes gtid its origin's mark in marks (when after it).
func addGTIDMark(marks, gtid string) string {
	origin, n, ok := gtidOrigin(gtid)
	if !ok {
		return marks
	}
	if marks == "" || marks == gtid {
		return gtid
	}
	out := make([]string, 0, 2)
	replaced := false
	for _, m := range strings.Split(marks, ",") {
		if o, mn, ok := gtidOrigin(m); ok && o == origin {
			replaced = true
			if n > mn {
				m = gtid
			}
		}
		out = append(out, m)
	}
	if !replaced {
		out = append(out, gtid)
	}
	return strings.Join(out, ",")
}

// addGap appends g, merging the two oldest gaps when there are too many.
func addGap(gaps []Gap, g Gap) []Gap {
	out := append(append(make([]Gap, 0, len(gaps)+1), gaps...), g)
	for len(out) > maxGaps {
		out = append([]Gap{{After: out[0].After, Before: out[1].Before}}, out[2:]...)
	}
	return out
}

// DedupStore remembers each subject's Progress. The SDK saves it after the
// handler succeeded and before acknowledging the message, so a change
// handed over is never handed over again (see Progress.judge).
type DedupStore interface {
	// Load returns the saved progress of subject; ok is false when none
	// was saved.
	Load(ctx context.Context, subject string) (p Progress, ok bool, err error)
	// Save records p for subject.
	Save(ctx context.Context, subject string, p Progress) error
	// Close releases the store.
	Close() error
}

// MemoryDedup is a DedupStore that forgets on restart: it drops the replays
// a producer restart causes while the consumer runs. The default.
type MemoryDedup struct {
	mu   sync.Mutex
	last map[string]Progress
}

// NewMemoryDedup returns an empty in-memory store.
func NewMemoryDedup() *MemoryDedup { return &MemoryDedup{last: map[string]Progress{}} }

// Load implements DedupStore.
func (m *MemoryDedup) Load(_ context.Context, subject string) (Progress, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.last[subject]
	return p, ok, nil
}

// Save implements DedupStore.
func (m *MemoryDedup) Save(_ context.Context, subject string, p Progress) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[subject] = p
	return nil
}

// Close implements DedupStore.
func (m *MemoryDedup) Close() error { return nil }

// BoltDedup is a DedupStore in a bbolt file, so duplicates are dropped across
// consumer restarts too. One file per consumer process.
type BoltDedup struct {
	db   *bolt.DB
	path string
}

var dedupBucket = []byte("dbsync-dedup")

// OpenBoltDedup opens (creating) the file at path. It fails within a second,
// naming the file, when another process holds it.
func OpenBoltDedup(path string) (*BoltDedup, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("dedup file %s is locked by another process (two consumers sharing one file?): %w", path, err)
		}
		return nil, fmt.Errorf("open dedup file %s: %w", path, err)
	}
	return &BoltDedup{db: db, path: path}, nil
}

// Load implements DedupStore. It reads the progress this SDK saves and the
// bare coordinate earlier versions saved.
func (b *BoltDedup) Load(_ context.Context, subject string) (Progress, bool, error) {
	var p Progress
	var ok bool
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(dedupBucket)
		if bk == nil {
			return nil
		}
		v := bk.Get([]byte(subject))
		if v == nil {
			return nil
		}
		ok = true
		if bytes.Contains(v, []byte(`"last"`)) {
			return json.Unmarshal(v, &p)
		}
		return json.Unmarshal(v, &p.Last)
	})
	if err != nil {
		return Progress{}, false, fmt.Errorf("dedup file %s, subject %s: %w", b.path, subject, err)
	}
	return p, ok, nil
}

// Save implements DedupStore.
func (b *BoltDedup) Save(_ context.Context, subject string, p Progress) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(dedupBucket)
		if err != nil {
			return err
		}
		return bk.Put([]byte(subject), v)
	})
	if err != nil {
		return fmt.Errorf("dedup file %s, subject %s: %w", b.path, subject, err)
	}
	return nil
}

// Close implements DedupStore.
func (b *BoltDedup) Close() error { return b.db.Close() }
