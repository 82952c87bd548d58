package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dbsync/dbsync/pkg/position"
)

// formatVersion is the "v" field of the stored checkpoint value.
const formatVersion = 1

// maxQuote is how many bytes of a bad value an error message quotes.
const maxQuote = 120

// record is the stored form of a checkpoint:
//
//	{"file":"mysql-bin.000002","pos":1234,"gtid":"0-1-42","history":"3f9a0c12b7d4","saved_at":"2024-05-01T10:00:00.123456789Z","v":1,"owner":"dbsync producer@host pid 7 #5f0c..."}
//
// "history" is absent in checkpoints written before it existed; "owner",
// the lease owner that wrote it (Leaser), in checkpoints written without a
// lease.
type record struct {
	File    *string `json:"file"`
	Pos     *uint32 `json:"pos"`
	GTID    string  `json:"gtid"`
	History string  `json:"history,omitempty"`
	// ServerID is the server_id the position is on; Continues the history
	// this one continues after a failover (both absent when unknown).
	ServerID  uint32     `json:"server_id,omitempty"`
	Continues string     `json:"continues,omitempty"`
	SavedAt   *time.Time `json:"saved_at"`
	V         *int       `json:"v"`
	Owner     string     `json:"owner,omitempty"`
	// Snapshot is the progress of a running snapshot (absent when none).
	Snapshot *position.Snapshot `json:"snapshot,omitempty"`
}

// encodeCheckpoint renders pos as the stored JSON value. It fails when pos
// cannot be resumed from (position.Validate), so a bad position is never
// written.
func encodeCheckpoint(pos position.Position, now time.Time) ([]byte, error) {
	return encodeCheckpointBy(pos, now, "")
}

// encodeCheckpointBy is encodeCheckpoint recording owner ("" for none) as
// the writer.
func encodeCheckpointBy(pos position.Position, now time.Time, owner string) ([]byte, error) {
	if err := pos.Validate(); err != nil {
		return nil, fmt.Errorf("refusing to save checkpoint: %w", err)
	}
	v := formatVersion
	t := now.UTC()
	return json.Marshal(record{File: &pos.File, Pos: &pos.Pos, GTID: pos.GTID, History: pos.History, ServerID: pos.ServerID, Continues: pos.Continues, SavedAt: &t, V: &v, Owner: owner, Snapshot: pos.Snapshot})
}

// decodeCheckpoint parses a stored value strictly: unknown fields, missing
// fields, trailing data, an unknown format version or a position that fails
// Validate are errors. The error does not name the store; callers add that.
func decodeCheckpoint(data []byte) (position.Position, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r record
	if err := dec.Decode(&r); err != nil {
		return position.Position{}, fmt.Errorf("not a JSON checkpoint object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return position.Position{}, errors.New("unexpected data after the JSON object")
	}
	var missing []string
	if r.V == nil {
		missing = append(missing, `"v"`)
	}
	if r.File == nil {
		missing = append(missing, `"file"`)
	}
	if r.Pos == nil {
		missing = append(missing, `"pos"`)
	}
	if r.SavedAt == nil {
		missing = append(missing, `"saved_at"`)
	}
	if len(missing) > 0 {
		return position.Position{}, fmt.Errorf("missing field(s) %v", missing)
	}
	if *r.V != formatVersion {
		return position.Position{}, fmt.Errorf("unsupported format version %d (this dbsync reads version %d)", *r.V, formatVersion)
	}
	p := position.Position{File: *r.File, Pos: *r.Pos, GTID: r.GTID, History: r.History, ServerID: r.ServerID, Continues: r.Continues, Snapshot: r.Snapshot}
	if err := p.Validate(); err != nil {
		return position.Position{}, err
	}
	return p, nil
}

// quote renders at most maxQuote bytes of a bad value for an error message.
func quote(b []byte) string {
	if len(b) <= maxQuote {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q... (%d bytes)", b[:maxQuote], len(b))
}

// decodeStored decodes the value read from the store at where, or returns an
// ErrCorrupt error that quotes it and says how to recover.
func decodeStored(where string, val []byte) (position.Position, error) {
	pos, err := decodeCheckpoint(val)
	if err != nil {
		return position.Position{}, fmt.Errorf("%s holds an invalid checkpoint %s: %v; %s: %w",
			where, quote(val), err, recoverHint, ErrCorrupt)
	}
	return pos, nil
}
