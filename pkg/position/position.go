// Package position defines the binlog coordinate that dbsync checkpoints and
// resumes from.
package position

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Position is a place in the source server's binary log. A checkpointed
// Position always points at a transaction boundary: the first byte after a
// COMMIT/XID event (or after a DDL statement, or the start of a new file).
type Position struct {
	// File is the binlog file name, e.g. "mysql-bin.000002".
	File string `json:"file"`
	// Pos is the byte offset inside File where reading resumes.
	Pos uint32 `json:"pos"`
	// GTID is the server's GTID state at Pos, when the server has GTIDs:
	// MariaDB's last GTID per domain ("0-1-42,1-1-7", as BINLOG_GTID_POS
	// gives it), MySQL's executed GTID set. Checkpoints written before
	// failover existed hold only the last transaction's GTID. It is how
	// the producer finds its place on another server of the replication
	// topology (see GTIDState).
	GTID string `json:"gtid,omitempty"`
	// ServerID is the server_id of the server whose binlog File and Pos
	// are in (0 in checkpoints written before it was recorded): a
	// different server_id at the configured address means a failover.
	ServerID uint32 `json:"server_id,omitempty"`
	// History identifies the binlog history File and Pos belong to (see
	// NewHistory); it travels into every envelope as source.history so
	// consumers never compare coordinates of different histories. Empty in
	// checkpoints written before it existed.
	History string `json:"history,omitempty"`
	// Continues is the history this one continues by GTID: set when the
	// producer moved to another server of the replication topology
	// (a promoted replica) and took a new history for its coordinates.
	// Consumers compare changes across the two by GTID.
	Continues string `json:"continues,omitempty"`
	// Snapshot is the progress of the snapshot running at this position,
	// nil when none runs.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}

// NewHistory returns a fresh history id: 12 random hex digits. The producer
// takes one when a checkpoint starts a binlog history it has not published
// from before (a first start, or a checkpoint moved after RESET MASTER or to
// another server).
func NewHistory() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; a time-based
		// id is still unique enough to tell histories apart.
		return fmt.Sprintf("%012x", uint64(time.Now().UnixNano())&0xffffffffffff)
	}
	return hex.EncodeToString(b[:])
}

// String renders the position as "file:pos" (plus the GTID when known).
func (p Position) String() string {
	if p.GTID != "" {
		return fmt.Sprintf("%s:%d (gtid %s)", p.File, p.Pos, p.GTID)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Pos)
}

// Describe renders the position with its GTID state, binlog history id,
// server and the history it continues, for people:
// "file:pos (gtid G, history H, server_id N, continues C)", leaving out
// what is unknown.
func (p Position) Describe() string {
	var parts []string
	if p.GTID != "" {
		parts = append(parts, "gtid "+p.GTID)
	}
	if p.History != "" {
		parts = append(parts, "history "+p.History)
	}
	if p.ServerID != 0 {
		parts = append(parts, fmt.Sprintf("server_id %d", p.ServerID))
	}
	if p.Continues != "" {
		parts = append(parts, "continues "+p.Continues)
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Pos)
	}
	return fmt.Sprintf("%s:%d (%s)", p.File, p.Pos, strings.Join(parts, ", "))
}

// IsZero reports whether p is the zero Position (no file).
func (p Position) IsZero() bool { return p.File == "" }

// Validate reports whether p can be resumed from.
func (p Position) Validate() error {
	if p.File == "" {
		return errors.New("position has no binlog file name")
	}
	if p.Pos < 4 {
		return fmt.Errorf("position %s: offset %d is before the first event (4)", p.File, p.Pos)
	}
	return nil
}

// Compare orders two positions of the same server history: -1 if p is before
// q, 0 if equal, 1 if after. File names compare by their numeric suffix,
// which is how MySQL and MariaDB name rotated binlogs.
func (p Position) Compare(q Position) int {
	if p.File != q.File {
		if len(p.File) != len(q.File) {
			if len(p.File) < len(q.File) {
				return -1
			}
			return 1
		}
		if p.File < q.File {
			return -1
		}
		return 1
	}
	switch {
	case p.Pos < q.Pos:
		return -1
	case p.Pos > q.Pos:
		return 1
	}
	return 0
}
