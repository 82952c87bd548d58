// Package sink defines what a target dbsync's sync command keeps equal to a
// set of source tables must do (Redis: pkg/sink/redissink; PostgreSQL:
// pkg/sink/pgsink), and the source table descriptions it is given.
//
// The sync command consumes each table through the SDK's batch API
// (client.SubscribeEnvelopeBatch) with the sink's own progress store as the
// SDK's dedup store: Apply stores a batch's rows and the progress that
// follows it in one atomic step, so after a crash anywhere the SDK finds in
// the target exactly what it holds and drops the changes it already
// applied (exactly once into the target).
package sink

import (
	"context"
	"fmt"
	"strings"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
)

// Column is one column of a source table, as information_schema.COLUMNS
// describes it.
type Column struct {
	// Name is the column's name.
	Name string
	// DataType is DATA_TYPE ("bigint", "decimal", "enum", ...), lower case.
	DataType string
	// ColumnType is COLUMN_TYPE ("bigint(20) unsigned", "enum('a','b')",
	// "decimal(10,2)"), lower case.
	ColumnType string
	// Nullable is IS_NULLABLE = 'YES'.
	Nullable bool
	// Precision and Scale are NUMERIC_PRECISION / NUMERIC_SCALE (DECIMAL),
	// or DATETIME_PRECISION in Precision for temporal types; 0 when NULL.
	Precision, Scale int
	// MaxLength is CHARACTER_MAXIMUM_LENGTH (0 when NULL).
	MaxLength int64
}

// Unsigned reports whether the column is an unsigned integer or decimal.
func (c Column) Unsigned() bool { return strings.Contains(c.ColumnType, "unsigned") }

// Table is one source table a sink keeps a copy of.
type Table struct {
	DB, Name string
	// Columns are the table's columns in ordinal order.
	Columns []Column
	// PK names the primary key columns in key order; a sink refuses a
	// table without one (it could not find a row to update or delete).
	PK []string
}

// String is "db.table".
func (t *Table) String() string { return t.DB + "." + t.Name }

// Column returns the column named name (case-insensitively), or false.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return Column{}, false
}

// Batch is consecutive changes of one table, in subject order, and the
// SDK progress that follows them.
type Batch struct {
	Table   *Table
	Changes []*envelope.Envelope
	// Key is the SDK dedup store's key of the subject (or partition) and
	// Progress what the SDK saves there once Apply returned nil. Apply
	// stores Progress under Key together with the rows, atomically.
	Key      string
	Progress client.Progress
}

// Sink keeps a target equal to source tables.
type Sink interface {
	// Prepare readies the target for t before its first batch (PostgreSQL
	// creates the table when missing and checks an existing one). An error
	// names the table and the fix.
	Prepare(ctx context.Context, t *Table) error
	// Apply writes the batch's changes and b.Progress atomically: after a
	// crash either all of them are stored or none. A change whose
	// coordinate is not after the one stored with its row (a replay, or a
	// snapshot row older than the row's last change) leaves the row as it
	// is. A change the target cannot take because the source table's
	// columns changed is a *SchemaChangeError; any other error is
	// transient (the SDK hands the batch over again after a backoff).
	Apply(ctx context.Context, b Batch) error
	// Dedup is the progress store Apply writes to, for client.Config.Dedup.
	Dedup() client.DedupStore
	// Ping checks that the target answers.
	Ping(ctx context.Context) error
	// Close releases the target's connections.
	Close() error
}

// SchemaChangeError reports a change whose columns the target's copy of
// the table does not have (or has with another type): the source table was
// altered. The batch is not applied; it is retried until the target is
// fixed as Fix says.
type SchemaChangeError struct {
	Table string
	// What describes the difference ("column \"note\" is not in the target table shop.orders").
	What string
	// Fix says what to do (an ALTER TABLE to run on the target, or drop
	// the target table and start the sync from a snapshot).
	Fix string
}

func (e *SchemaChangeError) Error() string {
	return fmt.Sprintf("schema change on source table %s: %s; %s", e.Table, e.What, e.Fix)
}
