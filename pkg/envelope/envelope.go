// Package envelope defines dbsync's wire format: one JSON document per changed
// row, shared by the producer (which writes it) and the consumer SDK (which
// reads it). docs/envelope.md is the human-readable contract; the golden files
// under pkg/binlog/testdata pin it.
package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the envelope format version written in the "v" field.
const Version = 1

// Change types.
const (
	TypeInsert = "insert"
	TypeUpdate = "update"
	TypeDelete = "delete"
	// TypeRead is a row as a snapshot read it (the table's existing rows,
	// re-published in order with the live changes); it has After and a
	// Source.Snapshot.
	TypeRead = "read"
)

// Envelope is one row change as consumers receive it. Before is absent for an
// insert, After for a delete. A column missing from the server's row image
// (binlog_row_image=MINIMAL) is a missing key, never a null.
type Envelope struct {
	V      int    `json:"v"`
	ID     string `json:"id"`
	Source Source `json:"source"`
	// Prev is the ID of the change of the same table the producer published
	// just before this one in the same pass; empty for the first change of
	// a table after a producer (re)start. A consumer whose last handled
	// change of the table is not Prev has missed one.
	Prev  string `json:"prev,omitempty"`
	DB    string `json:"db"`
	Table string `json:"table"`
	Type  string `json:"type"`
	// PK names the primary key columns in key order (empty when the table has
	// none).
	PK []string `json:"pk"`
	// Binary names the columns whose values are base64-encoded bytes
	// (BINARY, VARBINARY, BLOB family, GEOMETRY); absent when there are none.
	// It tells a consumer a byte string from a text that happens to look
	// like base64.
	Binary []string                   `json:"binary,omitempty"`
	Before map[string]json.RawMessage `json:"before,omitempty"`
	After  map[string]json.RawMessage `json:"after,omitempty"`
}

// Source is the binlog coordinate of the change. (File, Pos, Row) orders
// changes of one history: Pos is the start of the rows event, Row the row's
// index inside it.
type Source struct {
	Name     string `json:"name"`
	ServerID uint32 `json:"server_id"`
	// History identifies the binlog history the coordinate belongs to. The
	// producer picks a new one when its checkpoint moves to another history
	// (RESET MASTER, another server); coordinates of different histories do
	// not compare. Empty from producers that predate it.
	History string `json:"history,omitempty"`
	// Continues is set on the changes of a history the producer started
	// when it moved to another server of the replication topology (a
	// promoted replica): the history it continues. Changes of the two
	// compare by GTID (source.gtid), not by coordinate.
	Continues string    `json:"continues,omitempty"`
	File      string    `json:"file"`
	Pos       uint32    `json:"pos"`
	Row       int       `json:"row"`
	GTID      string    `json:"gtid,omitempty"`
	TS        time.Time `json:"ts"`
	// Snapshot is set on the rows of a snapshot (type "read"): their
	// coordinate is the transaction boundary they were published at, and
	// Row numbers the rows the snapshot read of the table.
	Snapshot *SnapshotRef `json:"snapshot,omitempty"`
}

// SnapshotRef places a snapshot row in its snapshot.
type SnapshotRef struct {
	// ID names the snapshot (one per "snapshot start" or initial snapshot).
	ID string `json:"id"`
	// Chunk numbers the table's chunks from 1.
	Chunk int `json:"chunk"`
	// Last is set on the rows of the table's last chunk.
	Last bool `json:"last,omitempty"`
}

// Decode parses one envelope. It fails with a *DecodeError on invalid JSON,
// on a version it does not know (wrapping *VersionError), and when the
// fields every change has (db, table, a known type, the source coordinate)
// are missing or contradict each other.
func Decode(data []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, &DecodeError{Err: err}
	}
	if e.V != Version {
		return nil, &DecodeError{Err: &VersionError{Got: e.V}}
	}
	if err := e.check(); err != nil {
		return nil, &DecodeError{Err: err}
	}
	return &e, nil
}

// check reports what makes e an incomplete change.
func (e *Envelope) check() error {
	var problems []string
	if e.DB == "" {
		problems = append(problems, `no "db"`)
	}
	if e.Table == "" {
		problems = append(problems, `no "table"`)
	}
	if e.Source.File == "" {
		problems = append(problems, `no "source.file"`)
	}
	switch e.Type {
	case TypeInsert:
		if e.After == nil {
			problems = append(problems, `an insert without "after"`)
		}
	case TypeUpdate:
		if e.Before == nil || e.After == nil {
			problems = append(problems, `an update without "before" and "after"`)
		}
	case TypeDelete:
		if e.Before == nil {
			problems = append(problems, `a delete without "before"`)
		}
	case TypeRead:
		if e.After == nil {
			problems = append(problems, `a read without "after"`)
		}
		if e.Source.Snapshot == nil {
			problems = append(problems, `a read without "source.snapshot"`)
		}
	case "":
		problems = append(problems, `no "type"`)
	default:
		problems = append(problems, fmt.Sprintf("unknown type %q (want insert, update, delete or read)", e.Type))
	}
	if len(problems) == 0 {
		return nil
	}
	id := e.ID
	if id == "" {
		id = "without an id"
	}
	return fmt.Errorf("envelope %s is incomplete: %s", id, strings.Join(problems, ", "))
}

// Unpublishable is the marker the producer publishes on its dead-letter
// subject in place of a row change it could not publish, when the table's
// policy is "skip" (Tables.OnUnpublishable): a consumer of that subject
// learns which change is missing from the table's subject and why.
type Unpublishable struct {
	V int `json:"v"`
	// Kind is always KindUnpublishable.
	Kind string `json:"kind"`
	// ID, Source, DB, Table and Type are those of the change left out.
	ID     string `json:"id"`
	Source Source `json:"source"`
	DB     string `json:"db"`
	Table  string `json:"table"`
	Type   string `json:"type"`
	// Subject is the subject the change would have been published on.
	Subject string `json:"subject"`
	// Reason says why it could not be published.
	Reason string `json:"reason"`
	// Size is the envelope's size in bytes (0 when none was encoded).
	Size int `json:"size"`
}

// KindUnpublishable is Unpublishable.Kind.
const KindUnpublishable = "unpublishable"

// DecodeUnpublishable parses a dead-letter marker.
func DecodeUnpublishable(data []byte) (*Unpublishable, error) {
	var u Unpublishable
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, &DecodeError{Err: err}
	}
	if u.V != Version {
		return nil, &DecodeError{Err: &VersionError{Got: u.V}}
	}
	if u.Kind != KindUnpublishable {
		return nil, &DecodeError{Err: fmt.Errorf("kind %q is not %q", u.Kind, KindUnpublishable)}
	}
	return &u, nil
}

// SourceOf returns the source coordinate of a message the producer wrote:
// a change envelope or a dead-letter marker. It fails on anything else.
func SourceOf(data []byte) (Source, error) {
	var probe struct {
		V      int     `json:"v"`
		Kind   string  `json:"kind"`
		ID     string  `json:"id"`
		Source *Source `json:"source"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return Source{}, &DecodeError{Err: err}
	}
	if probe.V != Version {
		return Source{}, &DecodeError{Err: &VersionError{Got: probe.V}}
	}
	if probe.Source == nil || probe.Source.File == "" || probe.ID == "" {
		return Source{}, &DecodeError{Err: errors.New("not a dbsync message: no id or source coordinate")}
	}
	if probe.Kind != "" && probe.Kind != KindUnpublishable {
		return Source{}, &DecodeError{Err: fmt.Errorf("unknown kind %q", probe.Kind)}
	}
	return *probe.Source, nil
}
