package position

// Snapshot is the progress of a running snapshot (the re-publication of
// tables' existing rows), saved with the checkpoint so that a restart
// resumes it at the next chunk. A checkpoint without one has no snapshot
// running.
type Snapshot struct {
	// ID names the snapshot in its rows' envelopes (source.snapshot.id).
	ID string `json:"id"`
	// Tables are the tables it reads, in order, one after the other.
	Tables []SnapshotTable `json:"tables"`
}

// SnapshotTable is one table's progress in a Snapshot.
type SnapshotTable struct {
	DB    string `json:"db"`
	Table string `json:"table"`
	// After is the chunking key of the last row of the last published
	// chunk; empty before the first chunk.
	After []KeyValue `json:"after,omitempty"`
	// Rows counts the rows read in the published chunks (the next row's
	// number in source.row); Chunks counts those chunks.
	Rows   int64 `json:"rows"`
	Chunks int   `json:"chunks"`
	// Done is set once the table's last chunk is published.
	Done bool `json:"done,omitempty"`
}

// KeyValue is one column of a chunking key, typed so that it binds to the
// next chunk's query as it was read: Kind is "i" (signed integer), "u"
// (unsigned integer), "f" (floating point), "s" (text) or "b" (bytes,
// Value in base64).
type KeyValue struct {
	Kind  string `json:"k"`
	Value string `json:"v"`
}

// Clone returns a deep copy of s (nil for nil).
func (s *Snapshot) Clone() *Snapshot {
	if s == nil {
		return nil
	}
	c := &Snapshot{ID: s.ID, Tables: make([]SnapshotTable, len(s.Tables))}
	copy(c.Tables, s.Tables)
	for i := range c.Tables {
		c.Tables[i].After = append([]KeyValue(nil), s.Tables[i].After...)
	}
	return c
}

// Current returns the first table not done, or nil when every table is.
func (s *Snapshot) Current() *SnapshotTable {
	if s == nil {
		return nil
	}
	for i := range s.Tables {
		if !s.Tables[i].Done {
			return &s.Tables[i]
		}
	}
	return nil
}
