package pgsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/redact"
	"github.com/dbsync/dbsync/pkg/sink"
)

// Defaults applied by New to empty Config fields.
const (
	DefaultSyncSchema    = "dbsync_sync"
	DefaultVersionColumn = "_dbsync"
	DefaultTombstoneTTL  = 24 * time.Hour
)

// maxIdentifier is PostgreSQL's longest identifier in bytes (NAMEDATALEN-1);
// a longer one would be truncated silently.
const maxIdentifier = 63

// Config configures a PostgreSQL sink.
type Config struct {
	// DSN is a pgx connection string: a URL
	// ("postgres://user:pw@host:5432/db?sslmode=verify-full") or
	// "key=value" pairs. Required. Its password is never logged.
	DSN string
	// Schema, when set, is the schema every table goes into, under its
	// source table's name. Empty (the default): each source database is a
	// schema of its own name (shop.orders → "shop"."orders").
	Schema string
	// TableName, when set, names the target of each source table (it
	// overrides Schema).
	TableName func(db, table string) (schema, name string)
	// SyncSchema holds the sink's own tables (progress, deleted); default
	// DefaultSyncSchema.
	SyncSchema string
	// VersionColumn is the column of every target table that holds the
	// version of the change that wrote the row; default
	// DefaultVersionColumn.
	VersionColumn string
	// TombstoneTTL is how long a deleted row's version is kept (so that an
	// older change of it arriving late does not bring it back); default
	// DefaultTombstoneTTL.
	TombstoneTTL time.Duration
	// MaxConns bounds the connection pool (0: pgxpool's default, the
	// larger of 4 and the number of CPUs).
	MaxConns int32
	// Log receives the sink's log lines (nil: none).
	Log logrus.FieldLogger
}

// Sink is a sink.Sink writing to PostgreSQL. Safe for concurrent use:
// Apply may run for different tables at once.
type Sink struct {
	cfg     Config
	pool    *pgxpool.Pool
	log     logrus.FieldLogger
	secrets *redact.Secrets
	where   string // "pg sink host:port/db" for messages
	// progress and deleted are the sanitized names of the sink's tables.
	progress, deleted string

	mu      sync.Mutex
	targets map[string]*target // by source "db.table"
	owners  map[string]string  // target "schema.table" → source "db.table"
	known   map[string]bool    // targets prepared once
	purged  map[string]time.Time

	// rowByRow makes Apply write every change with its own statements
	// (tests compare the multi-row statements with them).
	rowByRow bool
	// fallbacks counts the batches Apply ran again change by change after
	// a multi-row statement failed.
	fallbacks atomic.Int64
}

var _ sink.Sink = (*Sink)(nil)

// New checks cfg, connects, and creates the sink's schema and tables when
// missing (SyncSchema.progress, SyncSchema.deleted). It fails on an invalid
// setting or DSN (naming it, never the password), when the server does not
// answer or refuses the login, and when the user may not create the
// sink's tables.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if cfg.DSN == "" {
		return nil, errors.New("pg sink: no DSN configured; set the PostgreSQL connection string (Config.DSN)")
	}
	if cfg.SyncSchema == "" {
		cfg.SyncSchema = DefaultSyncSchema
	}
	if cfg.VersionColumn == "" {
		cfg.VersionColumn = DefaultVersionColumn
	}
	if cfg.TombstoneTTL < 0 {
		return nil, fmt.Errorf("pg sink: negative TombstoneTTL %s; use 0 for the %s default", cfg.TombstoneTTL, DefaultTombstoneTTL)
	}
	if cfg.TombstoneTTL == 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	for _, n := range []struct{ key, v string }{{"Schema", cfg.Schema}, {"SyncSchema", cfg.SyncSchema}, {"VersionColumn", cfg.VersionColumn}} {
		if len(n.v) > maxIdentifier {
			return nil, fmt.Errorf("pg sink: %s %q is longer than PostgreSQL's %d-byte identifiers", n.key, n.v, maxIdentifier)
		}
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("pg sink: invalid DSN (Config.DSN): %s", dsnError(err))
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	cc := pc.ConnConfig
	where := fmt.Sprintf("pg sink %s:%d/%s", cc.Host, cc.Port, cc.Database)
	s := &Sink{
		cfg:      cfg,
		log:      log.WithFields(logrus.Fields{"sink": "postgres", "host": cc.Host, "port": cc.Port, "database": cc.Database}),
		secrets:  redact.NewSecrets(cc.Password),
		where:    where,
		progress: pgx.Identifier{cfg.SyncSchema, "progress"}.Sanitize(),
		deleted:  pgx.Identifier{cfg.SyncSchema, "deleted"}.Sanitize(),
		targets:  map[string]*target{},
		owners:   map[string]string{},
		known:    map[string]bool{},
		purged:   map[string]time.Time{},
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, s.secrets.Error(fmt.Errorf("%s: %w", where, err))
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, s.secrets.Error(fmt.Errorf("%s: connect as user %q: %w", where, cc.User, err))
	}
	if err := s.createSyncTables(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	s.log.WithFields(logrus.Fields{"user": cc.User, "schema": cfg.Schema, "sync_schema": cfg.SyncSchema,
		"version_column": cfg.VersionColumn, "tombstone_ttl": cfg.TombstoneTTL}).Info("pg sink connected")
	return s, nil
}

// dsnError is the message of a DSN parse error without the DSN itself
// (pgx hides the password in it, but only as best it can), and with URL
// credentials hidden.
func dsnError(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "cannot parse `"); ok {
		if i := strings.Index(rest, "`: "); i >= 0 {
			msg = rest[i+len("`: "):]
		}
	}
	return redact.Text(msg)
}

// ddlLock serializes the sink's DDL across processes (two syncs preparing
// the same schema at once): CREATE SCHEMA IF NOT EXISTS can race.
const ddlLock = "SELECT pg_advisory_xact_lock(hashtext('dbsync pg sink ddl'))"

// createSyncTables creates SyncSchema, its progress table and its deleted
// table (tombstones) when missing.
func (s *Sink) createSyncTables(ctx context.Context) error {
	stmts := []string{
		ddlLock,
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{s.cfg.SyncSchema}.Sanitize(),
		"CREATE TABLE IF NOT EXISTS " + s.progress + ` (
			key text PRIMARY KEY,
			progress jsonb NOT NULL,
			updated_at timestamptz NOT NULL)`,
		"CREATE TABLE IF NOT EXISTS " + s.deleted + ` (
			tbl text NOT NULL,
			key text NOT NULL,
			head text NOT NULL,
			tail text NOT NULL,
			deleted_at timestamptz NOT NULL,
			PRIMARY KEY (tbl, key))`,
		"CREATE INDEX IF NOT EXISTS deleted_at ON " + s.deleted + " (tbl, deleted_at)",
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.secrets.Error(fmt.Errorf("%s: create the sink's tables %s and %s (the user needs CREATE on the database, or create them as the package documentation shows): %w",
			s.where, s.progress, s.deleted, err))
	}
	return nil
}

// targetName is the schema and table name of source table t's copy.
func (s *Sink) targetName(t *sink.Table) (schema, name string) {
	switch {
	case s.cfg.TableName != nil:
		return s.cfg.TableName(t.DB, t.Name)
	case s.cfg.Schema != "":
		return s.cfg.Schema, t.Name
	}
	return t.DB, t.Name
}

// Ping checks that the server answers.
func (s *Sink) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.secrets.Error(fmt.Errorf("%s: ping: %w", s.where, err))
	}
	return nil
}

// Close closes the connection pool (waiting for connections in use to be
// released).
func (s *Sink) Close() error {
	s.pool.Close()
	return nil
}
