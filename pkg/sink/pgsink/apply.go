package pgsink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/sink"
)

// versionTailLen is the length of a version's tail: file number (20
// digits), ":", pos (10 digits), ":", row (10 digits).
const versionTailLen = 20 + 1 + 10 + 1 + 10

// version splits a change's coordinate into its head, which names the
// binlog history (history, source name, binlog base name), and its
// fixed-width tail, so that two tails of one head compare as strings the
// way their coordinates compare. The stored version is head + "|" + tail
// (the Redis sink's format).
func version(s envelope.Source) (head, tail string) {
	base, num := s.File, uint64(0)
	if i := strings.LastIndexByte(s.File, '.'); i >= 0 {
		if n, err := strconv.ParseUint(s.File[i+1:], 10, 64); err == nil {
			base, num = s.File[:i], n
		}
	}
	return s.History + "|" + s.Name + "|" + base, fmt.Sprintf("%020d:%010d:%010d", num, s.Pos, s.Row)
}

// stmt is one queued statement.
type stmt struct {
	sql  string
	args []any
}

// Apply writes b's changes in order and b.Progress in one transaction
// (one round trip: the statements are pipelined), each change as one or
// two statements: an insert, read or update is an upsert of its after
// image (the columns it carries; an update that changes the primary key
// deletes the old key first), a delete deletes the before image's key and
// records a tombstone. A change whose version is not after the row's (or
// its tombstone's) of the same binlog history leaves the row as it is.
//
// Nothing is written when it fails: with a *sink.SchemaChangeError when a
// change has a column the target table does not have, a value that is not
// its column's form (the source column's type changed), or no value for a
// NOT NULL column; with a permanent error (failure.ErrPermanent, with its
// fix) for a value PostgreSQL cannot hold; and with a transient error
// naming the table and change when PostgreSQL fails.
func (s *Sink) Apply(ctx context.Context, b sink.Batch) error {
	t := b.Table
	if t == nil {
		return errors.New("pg sink: a batch without its table")
	}
	tg, err := s.prepared(ctx, t, true)
	if err != nil {
		return err
	}
	progress, err := json.Marshal(b.Progress)
	if err != nil {
		return fmt.Errorf("pg sink: table %s: encode the progress of %s: %w", t, b.Key, err)
	}

	batch := &pgx.Batch{}
	var owners []int // per queued statement: its change's index, -1 for the sink's own
	for i, e := range b.Changes {
		stmts, err := s.statements(tg, e)
		if err != nil {
			return err
		}
		for _, st := range stmts {
			batch.Queue(st.sql, st.args...)
			owners = append(owners, i)
		}
	}
	if s.purgeDue(tg.label) {
		batch.Queue("DELETE FROM "+s.deleted+" WHERE tbl = $1::text AND deleted_at < now() - $2::interval",
			tg.label, fmt.Sprintf("%d seconds", int64(s.cfg.TombstoneTTL/time.Second)))
		owners = append(owners, -1)
	}
	batch.Queue("INSERT INTO "+s.progress+` AS p (key, progress, updated_at) VALUES ($1::text, $2::jsonb, now())
		ON CONFLICT (key) DO UPDATE SET progress = EXCLUDED.progress, updated_at = EXCLUDED.updated_at`,
		b.Key, string(progress))
	owners = append(owners, -1)

	began := time.Now()
	rows, err := s.run(ctx, batch, owners)
	if err != nil {
		return s.applyError(tg, b, err)
	}
	s.log.WithFields(logrus.Fields{"table": t.String(), "target": tg.label, "key": b.Key, "changes": len(b.Changes),
		"statements": len(owners), "rows": rows, "took": time.Since(began)}).Debug("pg sink: batch applied")
	return nil
}

// stmtError is the failure of the queued statement at index i.
type stmtError struct {
	change int // index of the change, -1 for the sink's own statements
	err    error
}

func (e *stmtError) Error() string { return e.err.Error() }
func (e *stmtError) Unwrap() error { return e.err }

// run executes batch in one transaction and commits it; it returns the
// rows the changes' statements touched.
func (s *Sink) run(ctx context.Context, batch *pgx.Batch, owners []int) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	br := tx.SendBatch(ctx, batch)
	var rows int64
	for _, owner := range owners {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return 0, &stmtError{change: owner, err: err}
		}
		if owner >= 0 {
			rows += tag.RowsAffected()
		}
	}
	if err := br.Close(); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return rows, nil
}

// applyError describes a failed transaction: a NOT NULL column without a
// value is a *sink.SchemaChangeError; a statement PostgreSQL refused names
// its change; a table or column gone from PostgreSQL makes the next Apply
// check the table again.
func (s *Sink) applyError(tg *target, b sink.Batch, err error) error {
	what := "the batch"
	var se *stmtError
	var e *envelope.Envelope
	if errors.As(err, &se) && se.change >= 0 && !strings.Contains(err.Error(), "preprocessing batch") {
		// (pgx prepares every statement of a batch before running the
		// first: a failure then belongs to no change in particular.)
		e = b.Changes[se.change]
		what = fmt.Sprintf("change %s (%s, %d of %d)", e.ID, e.Type, se.change+1, len(b.Changes))
	}
	hint := ""
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23502" && e != nil && pe.SchemaName == tg.schema && pe.TableName == tg.name:
			return &sink.SchemaChangeError{
				Table: tg.src.String(),
				What:  fmt.Sprintf("change %s has no value for column %q, which is NOT NULL in the PostgreSQL table %s (the source dropped the column, or writes row images without every column: binlog_row_image=MINIMAL)", e.ID, pe.ColumnName, tg.label),
				Fix: fmt.Sprintf("if the source dropped the column, run on PostgreSQL: ALTER TABLE %s DROP COLUMN %s; (or ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL;); if the source writes minimal row images, set binlog_row_image=FULL there and sync the table again from a snapshot",
					tg.ident, pgx.Identifier{pe.ColumnName}.Sanitize(), tg.ident, pgx.Identifier{pe.ColumnName}.Sanitize()),
			}
		case strings.HasPrefix(pe.Code, "42"):
			// The table changed under the sink: check it again next time.
			s.forget(tg)
			hint = " (the PostgreSQL table changed; the next attempt checks it again and names what to fix)"
		case strings.HasPrefix(pe.Code, "22"):
			hint = " (PostgreSQL refuses a value: if the source column's type changed, restart the sync: it reloads the source table, and its Prepare names the ALTER TABLE that makes the PostgreSQL column fit)"
		}
	}
	return s.secrets.Error(fmt.Errorf("%s: table %s: apply a batch of %d changes and the progress of %s: %s failed%s: %w",
		s.where, tg.label, len(b.Changes), b.Key, what, hint, err))
}

// forget drops tg so that the next Apply of its table prepares it again.
func (s *Sink) forget(tg *target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.targets[tg.src.String()] == tg {
		delete(s.targets, tg.src.String())
	}
}

// purgeDue reports whether the tombstones of table label are due for
// expiry (every TombstoneTTL/24), and notes that they are being purged.
func (s *Sink) purgeDue(label string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.purged[label]) < s.cfg.TombstoneTTL/24 {
		return false
	}
	s.purged[label] = time.Now()
	return true
}

// statements returns the statements that apply change e to tg.
func (s *Sink) statements(tg *target, e *envelope.Envelope) ([]stmt, error) {
	t := tg.src
	if e.DB != t.DB || e.Table != t.Name {
		return nil, fmt.Errorf("pg sink: change %s of %s.%s in a batch of table %s (a bug in the caller)", e.ID, e.DB, e.Table, t)
	}
	if len(e.PK) > 0 && !slices.Equal(e.PK, t.PK) {
		return nil, &sink.SchemaChangeError{
			Table: t.String(),
			What:  fmt.Sprintf("change %s has primary key %v, the table %v", e.ID, e.PK, t.PK),
			Fix: fmt.Sprintf("the source table's primary key changed: drop the PostgreSQL table %s, restart the sync (it creates the table with the new key) and sync the table again from a snapshot",
				tg.ident),
		}
	}
	head, tail := version(e.Source)
	switch e.Type {
	case envelope.TypeInsert, envelope.TypeRead:
		k, err := s.key(tg, e, e.After, nil)
		if err != nil {
			return nil, err
		}
		up, err := s.upsert(tg, e, e.After, k, head, tail)
		if err != nil {
			return nil, err
		}
		return []stmt{up}, nil
	case envelope.TypeUpdate:
		// A minimal after image holds only the changed columns: the key
		// columns it lacks did not change.
		newKey, err := s.key(tg, e, e.After, e.Before)
		if err != nil {
			return nil, err
		}
		oldKey, err := s.key(tg, e, e.Before, e.After)
		if err != nil {
			return nil, err
		}
		after := e.After
		if len(newKey.filled) > 0 {
			after = make(map[string]json.RawMessage, len(e.After)+len(newKey.filled))
			for c, v := range e.After {
				after[c] = v
			}
			for _, c := range newKey.filled {
				after[c] = e.Before[c]
			}
		}
		up, err := s.upsert(tg, e, after, newKey, head, tail)
		if err != nil {
			return nil, err
		}
		if oldKey.text == newKey.text {
			return []stmt{up}, nil
		}
		return append(s.remove(tg, oldKey, head, tail), up), nil
	case envelope.TypeDelete:
		k, err := s.key(tg, e, e.Before, nil)
		if err != nil {
			return nil, err
		}
		return s.remove(tg, k, head, tail), nil
	}
	return nil, fmt.Errorf("pg sink: table %s: change %s has type %q (want insert, update, delete or read)", t, e.ID, e.Type)
}

// rowKey is a row's primary key: its text (the JSON array of the key
// values, the tombstones' key and Rows' map key) and its parameters.
type rowKey struct {
	text   string
	params []any
	// filled names the key columns taken from the fallback image.
	filled []string
}

// key returns the primary key of image, taking a column image lacks from
// fallback. A key column in neither is a *sink.SchemaChangeError.
func (s *Sink) key(tg *target, e *envelope.Envelope, image, fallback map[string]json.RawMessage) (rowKey, error) {
	var k rowKey
	b := []byte{'['}
	for i, c := range tg.pk {
		raw, ok := image[c.name]
		if !ok {
			raw, ok = fallback[c.name]
			if !ok {
				return rowKey{}, &sink.SchemaChangeError{
					Table: tg.src.String(),
					What:  fmt.Sprintf("change %s has no value for primary key column %q", e.ID, c.name),
					Fix:   "the source table's primary key changed: restart the sync (it reloads the source table and checks the PostgreSQL table's key)",
				}
			}
			k.filled = append(k.filled, c.name)
		}
		v, err := param(c.m, raw)
		if err != nil {
			return rowKey{}, s.valueError(tg, e, c, raw, err)
		}
		if i > 0 {
			b = append(b, ',')
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return rowKey{}, s.valueError(tg, e, c, raw, &formError{want: "JSON"})
		}
		b = append(b, compact.Bytes()...)
		k.params = append(k.params, v)
	}
	k.text = string(append(b, ']'))
	return k, nil
}

// versionCond is the condition under which a change at version (head $h,
// tail $t) replaces the row alias holds: the row has no version, one of
// another binlog history, or an older one.
func versionCond(alias, col string, h, t int) string {
	v := alias + "." + col
	return fmt.Sprintf(`(%s IS NULL OR left(%s, -%d) <> $%d::text OR right(%s, %d) COLLATE "C" < $%d::text)`,
		v, v, versionTailLen+1, h, v, versionTailLen, t)
}

// upsert is the statement writing image (the columns it carries) at key,
// unless the row or its tombstone has a version at or after the change's.
func (s *Sink) upsert(tg *target, e *envelope.Envelope, image map[string]json.RawMessage, k rowKey, head, tail string) (stmt, error) {
	var unknown []string
	for name := range image {
		if _, ok := tg.cols[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return stmt{}, s.unknownColumns(tg, e, unknown)
	}
	var cols, values, sets []string
	args := make([]any, 0, len(image)+5)
	for _, c := range tg.order {
		raw, ok := image[c.name]
		if !ok {
			continue
		}
		v, err := param(c.m, raw)
		if err != nil {
			return stmt{}, s.valueError(tg, e, c, raw, err)
		}
		args = append(args, v)
		cols = append(cols, c.ident)
		values = append(values, fmt.Sprintf("$%d::%s", len(args), c.cast))
		sets = append(sets, c.ident+" = EXCLUDED."+c.ident)
	}
	n := len(args)
	args = append(args, head+"|"+tail, tg.label, k.text, head, tail)
	cols = append(cols, tg.version)
	values = append(values, fmt.Sprintf("$%d::text", n+1))
	sets = append(sets, tg.version+" = EXCLUDED."+tg.version)
	q := fmt.Sprintf(`INSERT INTO %s AS dbsync_row (%s) SELECT %s
		WHERE NOT EXISTS (SELECT 1 FROM %s d WHERE d.tbl = $%d::text AND d.key = $%d::text AND d.head = $%d::text AND d.tail COLLATE "C" >= $%d::text)
		ON CONFLICT (%s) DO UPDATE SET %s WHERE %s`,
		tg.ident, strings.Join(cols, ", "), strings.Join(values, ", "),
		s.deleted, n+2, n+3, n+4, n+5,
		identList(tg.pk), strings.Join(sets, ", "), versionCond("dbsync_row", tg.version, n+4, n+5))
	return stmt{sql: q, args: args}, nil
}

// remove is the deletion of the row at key, unless its version is at or
// after the change's, and the tombstone recording it.
func (s *Sink) remove(tg *target, k rowKey, head, tail string) []stmt {
	where := make([]string, len(tg.pk))
	args := make([]any, 0, len(tg.pk)+2)
	for i, c := range tg.pk {
		args = append(args, k.params[i])
		where[i] = fmt.Sprintf("%s = $%d::%s", c.ident, len(args), c.cast)
	}
	n := len(args)
	args = append(args, head, tail)
	del := fmt.Sprintf("DELETE FROM %s AS dbsync_row WHERE %s AND %s",
		tg.ident, strings.Join(where, " AND "), versionCond("dbsync_row", tg.version, n+1, n+2))
	tomb := `INSERT INTO ` + s.deleted + ` AS d (tbl, key, head, tail, deleted_at) VALUES ($1::text, $2::text, $3::text, $4::text, now())
		ON CONFLICT (tbl, key) DO UPDATE SET head = EXCLUDED.head, tail = EXCLUDED.tail, deleted_at = EXCLUDED.deleted_at
		WHERE d.head <> EXCLUDED.head OR d.tail COLLATE "C" < EXCLUDED.tail`
	return []stmt{{sql: del, args: args}, {sql: tomb, args: []any{tg.label, k.text, head, tail}}}
}

// unknownColumns is the *sink.SchemaChangeError of a change with columns
// the target does not have.
func (s *Sink) unknownColumns(tg *target, e *envelope.Envelope, names []string) error {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	alters := make([]string, len(names))
	for i, n := range names {
		alters[i] = fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s <type>;", tg.ident, pgx.Identifier{n}.Sanitize())
	}
	return &sink.SchemaChangeError{
		Table: tg.src.String(),
		What: fmt.Sprintf("change %s has column %s, which the PostgreSQL table %s does not have (the source table gained it after the sync read its columns)",
			e.ID, strings.Join(quoted, ", "), tg.label),
		Fix: fmt.Sprintf("restart the sync: it reads the source table's columns again, and Prepare then names the exact statement to run on PostgreSQL, %s with <type> the source type's mapping (the pgsink documentation's table); this sync run does not know the new column's source type",
			strings.Join(alters, " ")),
	}
}

// valueError describes a value of column c in change e that param refused.
func (s *Sink) valueError(tg *target, e *envelope.Envelope, c *column, raw json.RawMessage, err error) error {
	shown := string(raw)
	if len(shown) > 60 {
		shown = shown[:60] + "..."
	}
	var fe *formError
	if errors.As(err, &fe) {
		return &sink.SchemaChangeError{
			Table: tg.src.String(),
			What: fmt.Sprintf("column %q of change %s holds %s, which is not %s as its source type %s gives (the source column's type changed)",
				c.name, e.ID, shown, fe.want, c.m.source),
			Fix: "restart the sync: it reads the source table's columns again, and Prepare then names the ALTER TABLE that makes the PostgreSQL column fit",
		}
	}
	var ue *unstorableError
	if errors.As(err, &ue) {
		return failure.WithFix(failure.Permanent(fmt.Errorf("pg sink: table %s: column %q of change %s: %s; %s", tg.src, c.name, e.ID, ue.reason, ue.fix)), ue.fix)
	}
	return fmt.Errorf("pg sink: table %s: column %q of change %s: %w", tg.src, c.name, e.ID, err)
}
