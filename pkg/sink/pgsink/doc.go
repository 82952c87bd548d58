// Package pgsink keeps copies of source tables in PostgreSQL: one table per
// source table, one row per source row.
//
// # Tables
//
// Source table db.table becomes the PostgreSQL table "db"."table": the
// source database is a schema of the same name, created when missing.
// Config.Schema puts every table into that one schema under its source
// name ("public"."table"), and Config.TableName names each target itself;
// two source tables mapped to one target are refused. Names are quoted
// identifiers, case kept; a name over 63 bytes is refused.
//
// Prepare creates a missing table with the source's columns in source
// order, each of the type below, NOT NULL where the source column is, the
// source's primary key, and the version column (Config.VersionColumn,
// default "_dbsync", text). A source table without a primary key is
// refused. An existing table is checked, never altered: a missing column,
// a type that cannot hold every source value, NOT NULL on a column the
// source allows NULL in, no version column, or no unique key on exactly the
// primary key's columns is a *sink.SchemaChangeError whose Fix lists the
// ALTER TABLE statements to run. Wider types are accepted (bigint for
// smallint, numeric with more digits, double precision for real,
// character varying for text, timestamp(6) for timestamp(3)); columns the
// source does not have are left alone (and must be nullable or have a
// default).
//
// # Type mapping
//
//	MySQL / MariaDB                         PostgreSQL                   value
//	TINYINT, TINYINT UNSIGNED, BOOL         smallint
//	SMALLINT                                smallint
//	SMALLINT UNSIGNED, MEDIUMINT (UNSIGNED) integer
//	INT                                     integer
//	INT UNSIGNED                            bigint
//	BIGINT                                  bigint
//	BIGINT UNSIGNED                         numeric(20)                  up to 18446744073709551615
//	DECIMAL(p,s) / NUMERIC                  numeric(p,s)                 digits kept exactly
//	FLOAT                                   real
//	DOUBLE                                  double precision
//	BIT(n)                                  smallint (n<=15), integer (n<=31), bigint (n<=63), numeric(20) (n=64): the number
//	YEAR                                    smallint
//	CHAR, VARCHAR, TEXT family              text
//	ENUM                                    text                         the member's name ("" for MySQL's invalid value)
//	SET                                     text[]                       member names in definition order, '{}' for none
//	BINARY, VARBINARY, BLOB family          bytea                        the bytes (base64-decoded)
//	GEOMETRY and its subtypes               bytea                        MySQL's internal form: SRID (4 bytes LE) + WKB
//	JSON (and MariaDB's json_valid LONGTEXT) jsonb                       a JSON null is stored as SQL NULL
//	DATE                                    date                         zero date: -infinity
//	TIME(p)                                 interval                     -838:59:59 .. 838:59:59 with the fraction
//	DATETIME(p)                             timestamp(p)                 the wall clock; zero date: -infinity
//	TIMESTAMP(p)                            timestamptz(p)               the instant; zero date: -infinity
//
// MySQL's zero dates ("0000-00-00", "0000-00-00 00:00:00") are stored as
// -infinity, which PostgreSQL has for date, timestamp and timestamptz: no
// real value collides with it, it sorts before every date, and it keeps a
// NOT NULL column NOT NULL; Rows turns it back into the zero literal. A
// date with a zero month or day only ("2026-00-15", which some SQL modes
// let MySQL store) has no PostgreSQL counterpart: Apply fails permanently,
// naming the column. So does a text holding a NUL character (PostgreSQL
// text cannot store one). A JSON document with a \u0000 in a string is
// refused by jsonb: Apply fails naming the change. Another type (MariaDB's
// UUID, INET6, ...) is refused by Prepare, naming the column.
//
// # Versions and tombstones
//
// The version column holds the coordinate of the change that wrote the
// row, in the Redis sink's format: "<history>|<source name>|<binlog base
// name>|<file number, 20 digits>:<pos, 10 digits>:<row, 10 digits>", e.g.
// "3f9a0c12b7d4|main|mysql-bin|00000000000000000002:0000004211:0000000000".
// A change is applied only when its coordinate is after the row's of the
// same history (same history, source name and binlog base name); a change
// of another history, which the SDK already judged, is applied. So a
// replayed batch, a change arriving late (the SDK hands over a change it
// missed after later ones), or a snapshot row older than the row's last
// change leaves the row as it is. A delete removes the row and records a
// tombstone in SyncSchema.deleted (tbl = "schema.table", key = the primary
// key's JSON array, head and tail of the delete's version) that an older
// insert or update of the key cannot pass; tombstones are removed after
// Config.TombstoneTTL (default 24h).
//
// # Changes
//
// An insert, snapshot read or update is an upsert of its after image: the
// columns it carries are written (INSERT ... ON CONFLICT (pk) DO UPDATE),
// the others keep their value (a row image of binlog_row_image=MINIMAL); an
// update's after image without its key columns keeps the before image's
// key. An update that changes the primary key deletes the old key (with a
// tombstone) before the upsert. A delete deletes the before image's key.
// A change with a column the table does not have is a
// *sink.SchemaChangeError; so is a value that is not the JSON form of its
// column's source type (the source column's type changed) and, from
// PostgreSQL, a NOT NULL column without a value.
//
// Consecutive changes are written together where one statement has
// exactly the effect of one statement per change in order: a run of
// upserts carrying the same columns, of distinct keys, is one
// INSERT ... SELECT ... FROM unnest(<one array per column>) ON CONFLICT
// (pk) DO UPDATE, and a run of deletes of distinct keys one
// DELETE ... USING unnest(<keys>) and one insert of their tombstones, each
// row with the version and tombstone checks above (lookups of the primary
// keys). A repeated key ends a run (the later change sees the earlier
// one's row), and a key-changing update is written by its own statements.
// When a multi-row statement fails, Apply rolls the transaction back and
// runs the batch again with one statement per change, so that the error
// names the change (or the batch goes through: a PostgreSQL value spelled
// two ways in one run, such as the decimal keys "1.5" and "1.50", is one
// row that one statement cannot write twice).
//
// # Atomicity and progress
//
// Apply runs a batch in one transaction: its changes in order (pipelined:
// one round trip), then the upsert of the SDK progress that follows them
// into SyncSchema.progress (Config.SyncSchema, default "dbsync_sync"):
//
//	CREATE TABLE dbsync_sync.progress (key text PRIMARY KEY, progress jsonb NOT NULL, updated_at timestamptz NOT NULL)
//
// key is the SDK's subject key (sink.Batch.Key), progress the JSON of
// client.Progress. After a crash either the batch's rows and its progress
// are stored, or neither; Dedup reads and writes the same table. New
// creates the schema and its tables progress and deleted when missing (the
// user needs CREATE on the database, or create them beforehand as New
// does).
//
// Rows reads a table back in the contract's JSON form, to compare the copy
// with the source value for value.
package pgsink
