// Package envelope defines dbsync's wire format: one JSON document per changed
// row, shared by the producer (which writes it) and the consumer SDK (which
// reads it). docs/envelope.md is the human-readable contract; the golden files
// under pkg/binlog/testdata pin it.
package envelope

import (
	"encoding/json"
	"time"
)

// Version is the envelope format version written in the "v" field.
const Version = 1

// Change types.
const (
	TypeInsert = "insert"
	TypeUpdate = "update"
	TypeDelete = "delete"
)

// Envelope is one row change as consumers receive it. Before is absent for an
// insert, After for a delete. A column missing from the server's row image
// (binlog_row_image=MINIMAL) is a missing key, never a null.
type Envelope struct {
	V      int    `json:"v"`
	ID     string `json:"id"`
	Source Source `json:"source"`
	DB     string `json:"db"`
	Table  string `json:"table"`
	Type   string `json:"type"`
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
// changes: Pos is the start of the rows event, Row the row's index inside it.
type Source struct {
	Name     string    `json:"name"`
	ServerID uint32    `json:"server_id"`
	File     string    `json:"file"`
	Pos      uint32    `json:"pos"`
	Row      int       `json:"row"`
	GTID     string    `json:"gtid,omitempty"`
	TS       time.Time `json:"ts"`
}

// Decode parses one envelope. It fails on invalid JSON and on a version it
// does not know.
func Decode(data []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, &DecodeError{Err: err}
	}
	if e.V != Version {
		return nil, &DecodeError{Err: &VersionError{Got: e.V}}
	}
	return &e, nil
}
