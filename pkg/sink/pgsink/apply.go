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

// stmt is one queued statement.
type stmt struct {
	sql  string
	args []any
}

// Apply writes b's changes in order and b.Progress in one transaction
// (one round trip: the statements are pipelined). An insert, read or
// update is an upsert of its after image (the columns it carries; an
// update that changes the primary key deletes the old key first), a delete
// deletes the before image's key and records a tombstone. A change whose
// version is not after the row's (or its tombstone's) of the same binlog
// history leaves the row as it is.
//
// Consecutive changes one statement can write together (see segment) are
// written by one multi-row statement per run: upserts of the same columns,
// or deletes, of distinct keys; the others by their own statements. When a
// multi-row statement fails, the transaction is rolled back and the batch
// is run again with one statement per change, which names the change
// PostgreSQL refuses (or succeeds: a run of rows PostgreSQL takes one by
// one but not together).
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
	ops := make([]op, len(b.Changes))
	for i, e := range b.Changes {
		if ops[i], err = s.change(tg, e); err != nil {
			return err
		}
	}
	purge := s.purgeDue(tg.label)

	began := time.Now()
	batch, spans := s.queue(tg, ops, !s.rowByRow, purge, b.Key, string(progress))
	rows, err := s.run(ctx, batch, spans)
	if err != nil && ctx.Err() == nil && multiRowFailed(err, spans) {
		s.log.WithFields(logrus.Fields{"table": t.String(), "target": tg.label, "key": b.Key, "changes": len(b.Changes),
			"error": s.secrets.Error(err).Error()}).Info("pg sink: a multi-row statement failed; applying the batch again with one statement per change")
		s.fallbacks.Add(1)
		batch, spans = s.queue(tg, ops, false, purge, b.Key, string(progress))
		rows, err = s.run(ctx, batch, spans)
	}
	if err != nil {
		return s.applyError(tg, b, err)
	}
	s.log.WithFields(logrus.Fields{"table": t.String(), "target": tg.label, "key": b.Key, "changes": len(b.Changes),
		"statements": len(spans), "rows": rows, "took": time.Since(began)}).Debug("pg sink: batch applied")
	return nil
}

// span is the changes a queued statement writes: n changes from index
// first; n is 0 for the sink's own statements.
type span struct{ first, n int }

// queue returns the statements of a batch whose changes are ops, in
// order, each with its span: with multi, a run of changes segment allows
// is written by one multi-row statement (two for deletes); then the
// expiry of tombstones (with purge) and the upsert of the progress.
func (s *Sink) queue(tg *target, ops []op, multi, purge bool, key, progress string) (*pgx.Batch, []span) {
	batch := &pgx.Batch{}
	var spans []span
	add := func(sts []stmt, sp span) {
		for _, st := range sts {
			batch.Queue(st.sql, st.args...)
			spans = append(spans, sp)
		}
	}
	for i := 0; i < len(ops); {
		n := 1
		if multi {
			n = segment(ops[i:])
		}
		if n == 1 {
			add(s.single(tg, &ops[i]), span{i, 1})
		} else {
			add(s.multiRow(tg, ops[i:i+n]), span{i, n})
		}
		i += n
	}
	if purge {
		add([]stmt{{sql: "DELETE FROM " + s.deleted + " WHERE tbl = $1::text AND deleted_at < now() - $2::interval",
			args: []any{tg.label, fmt.Sprintf("%d seconds", int64(s.cfg.TombstoneTTL/time.Second))}}}, span{-1, 0})
	}
	add([]stmt{{sql: "INSERT INTO " + s.progress + ` AS p (key, progress, updated_at) VALUES ($1::text, $2::jsonb, now())
		ON CONFLICT (key) DO UPDATE SET progress = EXCLUDED.progress, updated_at = EXCLUDED.updated_at`,
		args: []any{key, progress}}}, span{-1, 0})
	return batch, spans
}

// multiRowFailed reports whether a batch of the statements spans says
// failed with err at a multi-row statement (or while pgx prepared a batch
// holding one).
func multiRowFailed(err error, spans []span) bool {
	var se *stmtError
	if !errors.As(err, &se) {
		return false
	}
	if se.n > 1 {
		return true
	}
	var pe pgx.ErrPreprocessingBatch
	return errors.As(err, &pe) && slices.ContainsFunc(spans, func(sp span) bool { return sp.n > 1 })
}

// stmtError is the failure of a queued statement, with the changes it
// writes.
type stmtError struct {
	span
	err error
}

func (e *stmtError) Error() string { return e.err.Error() }
func (e *stmtError) Unwrap() error { return e.err }

// run executes batch, whose statements write the changes spans says, in
// one transaction and commits it; it returns the rows the changes'
// statements touched.
func (s *Sink) run(ctx context.Context, batch *pgx.Batch, spans []span) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	br := tx.SendBatch(ctx, batch)
	var rows int64
	for _, sp := range spans {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return 0, &stmtError{span: sp, err: err}
		}
		if sp.n > 0 {
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
	if errors.As(err, &se) && se.n == 1 && !strings.Contains(err.Error(), "preprocessing batch") {
		// (pgx prepares every statement of a batch before running the
		// first: a failure then belongs to no change in particular.)
		e = b.Changes[se.first]
		what = fmt.Sprintf("change %s (%s, %d of %d)", e.ID, e.Type, se.first+1, len(b.Changes))
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

// opKind is what a change does to the target table.
type opKind int

const (
	opUpsert opKind = iota // insert, read, or update keeping the key: an upsert
	opDelete               // delete: a deletion and its tombstone
	opMove                 // update changing the key: a deletion of the old key, then an upsert
)

// op is a change to apply, checked and converted into parameters.
type op struct {
	kind opKind
	// key is the key an upsert writes or a delete deletes; old the key a
	// move deletes.
	key, old rowKey
	// head and tail are the change's version (see version).
	head, tail string
	// cols are the columns an upsert writes, in the table's order, vals
	// their parameters.
	cols []*column
	vals []any
}

// change checks change e and converts it into the op applying it to tg.
func (s *Sink) change(tg *target, e *envelope.Envelope) (op, error) {
	t := tg.src
	if e.DB != t.DB || e.Table != t.Name {
		return op{}, fmt.Errorf("pg sink: change %s of %s.%s in a batch of table %s (a bug in the caller)", e.ID, e.DB, e.Table, t)
	}
	if len(e.PK) > 0 && !slices.Equal(e.PK, t.PK) {
		return op{}, &sink.SchemaChangeError{
			Table: t.String(),
			What:  fmt.Sprintf("change %s has primary key %v, the table %v", e.ID, e.PK, t.PK),
			Fix: fmt.Sprintf("the source table's primary key changed: drop the PostgreSQL table %s, restart the sync (it creates the table with the new key) and sync the table again from a snapshot",
				tg.ident),
		}
	}
	o := op{kind: opUpsert}
	o.head, o.tail = sink.Version(e.Source)
	var err error
	switch e.Type {
	case envelope.TypeInsert, envelope.TypeRead:
		if o.key, err = s.key(tg, e, e.After, nil); err != nil {
			return op{}, err
		}
		if o.cols, o.vals, err = s.image(tg, e, e.After); err != nil {
			return op{}, err
		}
		return o, nil
	case envelope.TypeUpdate:
		// A minimal after image holds only the changed columns: the key
		// columns it lacks did not change.
		if o.key, err = s.key(tg, e, e.After, e.Before); err != nil {
			return op{}, err
		}
		if o.old, err = s.key(tg, e, e.Before, e.After); err != nil {
			return op{}, err
		}
		after := e.After
		if len(o.key.filled) > 0 {
			after = make(map[string]json.RawMessage, len(e.After)+len(o.key.filled))
			for c, v := range e.After {
				after[c] = v
			}
			for _, c := range o.key.filled {
				after[c] = e.Before[c]
			}
		}
		if o.cols, o.vals, err = s.image(tg, e, after); err != nil {
			return op{}, err
		}
		if o.old.text != o.key.text {
			o.kind = opMove
		}
		return o, nil
	case envelope.TypeDelete:
		if o.key, err = s.key(tg, e, e.Before, nil); err != nil {
			return op{}, err
		}
		o.kind = opDelete
		return o, nil
	}
	return op{}, fmt.Errorf("pg sink: table %s: change %s has type %q (want insert, update, delete or read)", t, e.ID, e.Type)
}

// single returns the statements applying o by itself.
func (s *Sink) single(tg *target, o *op) []stmt {
	switch o.kind {
	case opDelete:
		return s.remove(tg, o.key, o.head, o.tail)
	case opMove:
		return append(s.remove(tg, o.old, o.head, o.tail), s.upsert(tg, o))
	}
	return []stmt{s.upsert(tg, o)}
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

// versionCond is the condition under which a change at version (head h,
// tail t: SQL expressions of type text) replaces the row whose version is
// the expression v: the row has no version, one of another binlog
// history, or an older one.
func versionCond(v, h, t string) string {
	return fmt.Sprintf(`(%s IS NULL OR left(%s, -%d) <> %s OR right(%s, %d) COLLATE "C" < %s)`,
		v, v, sink.VersionTailLen+1, h, v, sink.VersionTailLen, t)
}

// image checks the columns image carries and converts their values: it
// returns them in tg's order with their parameters.
func (s *Sink) image(tg *target, e *envelope.Envelope, image map[string]json.RawMessage) ([]*column, []any, error) {
	var unknown []string
	for name := range image {
		if _, ok := tg.cols[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, nil, s.unknownColumns(tg, e, unknown)
	}
	cols := make([]*column, 0, len(image))
	vals := make([]any, 0, len(image))
	for _, c := range tg.order {
		raw, ok := image[c.name]
		if !ok {
			continue
		}
		v, err := param(c.m, raw)
		if err != nil {
			return nil, nil, s.valueError(tg, e, c, raw, err)
		}
		cols = append(cols, c)
		vals = append(vals, v)
	}
	return cols, vals, nil
}

// upsert is the statement writing o's columns at o.key, unless the row or
// its tombstone has a version at or after o's.
func (s *Sink) upsert(tg *target, o *op) stmt {
	cols := make([]string, 0, len(o.cols)+1)
	values := make([]string, 0, len(o.cols)+1)
	sets := make([]string, 0, len(o.cols)+1)
	args := make([]any, 0, len(o.vals)+5)
	for i, c := range o.cols {
		args = append(args, o.vals[i])
		cols = append(cols, c.ident)
		values = append(values, fmt.Sprintf("$%d::%s", len(args), c.cast))
		sets = append(sets, c.ident+" = EXCLUDED."+c.ident)
	}
	n := len(args)
	args = append(args, o.head+"|"+o.tail, tg.label, o.key.text, o.head, o.tail)
	cols = append(cols, tg.version)
	values = append(values, fmt.Sprintf("$%d::text", n+1))
	sets = append(sets, tg.version+" = EXCLUDED."+tg.version)
	q := fmt.Sprintf(`INSERT INTO %s AS dbsync_row (%s) SELECT %s
		WHERE NOT EXISTS (SELECT 1 FROM %s d WHERE d.tbl = $%d::text AND d.key = $%d::text AND d.head = $%d::text AND d.tail COLLATE "C" >= $%d::text)
		ON CONFLICT (%s) DO UPDATE SET %s WHERE %s`,
		tg.ident, strings.Join(cols, ", "), strings.Join(values, ", "),
		s.deleted, n+2, n+3, n+4, n+5,
		identList(tg.pk), strings.Join(sets, ", "),
		versionCond("dbsync_row."+tg.version, fmt.Sprintf("$%d::text", n+4), fmt.Sprintf("$%d::text", n+5)))
	return stmt{sql: q, args: args}
}

// tombstoneSQL is the conflict clause of the insert of a deleted key's
// tombstone: it replaces a tombstone of another binlog history or an older
// one.
const tombstoneSQL = `ON CONFLICT (tbl, key) DO UPDATE SET head = EXCLUDED.head, tail = EXCLUDED.tail, deleted_at = EXCLUDED.deleted_at
		WHERE d.head <> EXCLUDED.head OR d.tail COLLATE "C" < EXCLUDED.tail`

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
		tg.ident, strings.Join(where, " AND "),
		versionCond("dbsync_row."+tg.version, fmt.Sprintf("$%d::text", n+1), fmt.Sprintf("$%d::text", n+2)))
	tomb := `INSERT INTO ` + s.deleted + ` AS d (tbl, key, head, tail, deleted_at) VALUES ($1::text, $2::text, $3::text, $4::text, now())
		` + tombstoneSQL
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
