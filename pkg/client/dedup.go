package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/position"
)

// Coordinate is where a change sits in the source's binlog. Along a subject,
// first deliveries have strictly increasing coordinates, and a replay after a
// producer restart repeats an in-order suffix; so anything at or before the
// last processed coordinate is a duplicate.
type Coordinate struct {
	File string `json:"file"`
	Pos  uint32 `json:"pos"`
	Row  int    `json:"row"`
}

// CoordinateOf returns the coordinate of an envelope.
func CoordinateOf(e *envelope.Envelope) Coordinate {
	return Coordinate{File: e.Source.File, Pos: e.Source.Pos, Row: e.Source.Row}
}

// Compare returns -1, 0 or 1 as c is before, equal to or after d.
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

func (c Coordinate) String() string { return fmt.Sprintf("%s:%d:%d", c.File, c.Pos, c.Row) }

// DedupStore remembers the last processed coordinate per subject. The SDK
// saves a coordinate after the handler succeeded and before acknowledging
// the message.
type DedupStore interface {
	// Last returns the last saved coordinate of subject; ok is false when
	// none was saved.
	Last(subject string) (c Coordinate, ok bool, err error)
	// Save records c as processed for subject.
	Save(subject string, c Coordinate) error
	// Close releases the store.
	Close() error
}

// MemoryDedup is a DedupStore that forgets on restart: it drops the replays
// a producer restart causes while the consumer runs. The default.
type MemoryDedup struct {
	mu   sync.Mutex
	last map[string]Coordinate
}

// NewMemoryDedup returns an empty in-memory store.
func NewMemoryDedup() *MemoryDedup { return &MemoryDedup{last: map[string]Coordinate{}} }

// Last implements DedupStore.
func (m *MemoryDedup) Last(subject string) (Coordinate, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.last[subject]
	return c, ok, nil
}

// Save implements DedupStore.
func (m *MemoryDedup) Save(subject string, c Coordinate) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[subject] = c
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

// Last implements DedupStore.
func (b *BoltDedup) Last(subject string) (Coordinate, bool, error) {
	var c Coordinate
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
		return json.Unmarshal(v, &c)
	})
	if err != nil {
		return Coordinate{}, false, fmt.Errorf("dedup file %s, subject %s: %w", b.path, subject, err)
	}
	return c, ok, nil
}

// Save implements DedupStore.
func (b *BoltDedup) Save(subject string, c Coordinate) error {
	v, err := json.Marshal(c)
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
