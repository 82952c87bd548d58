package pgsink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/sink"
)

// target is a prepared source table's PostgreSQL copy.
type target struct {
	src          *sink.Table
	schema, name string
	// ident is the sanitized "schema"."table", label schema.table for
	// messages and the tombstones' tbl.
	ident, label string
	cols         map[string]*column // by source column name
	order        []*column          // in source order
	pk           []*column
	version      string // sanitized version column
}

// column is one column of a target.
type column struct {
	name  string // the source's (and target's) column name
	ident string // sanitized
	m     mapping
	// cast is the target column's type as format_type shows it: the
	// statements cast their parameters to it.
	cast string
}

// Prepare readies the copy of t: it refuses a table without a primary key,
// with a column named like Config.VersionColumn, or with a column type the
// sink has no mapping for (permanent errors naming the column); creates the
// schema and the table when missing (columns in source order with their
// mapped types, NOT NULL as at the source, the version column, the source's
// primary key); and checks an existing table: a missing or incompatible
// column, a NOT NULL where the source allows NULL, no version column or no
// unique key on the primary key's columns is a *sink.SchemaChangeError whose
// Fix holds the statements to run. Preparing a table again (after the
// source table was reloaded) checks it again.
func (s *Sink) Prepare(ctx context.Context, t *sink.Table) error {
	return s.prepare(ctx, t, true)
}

// prepare is Prepare; with create false a missing table is an error.
func (s *Sink) prepare(ctx context.Context, t *sink.Table, create bool) error {
	tg, err := s.plan(t)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if owner, ok := s.owners[tg.label]; ok && owner != t.String() {
		s.mu.Unlock()
		return failure.Permanent(fmt.Errorf("%s: source tables %s and %s both map to the PostgreSQL table %s; give them different targets (Config.TableName)",
			s.where, owner, t, tg.label))
	}
	s.mu.Unlock()

	created := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ddlLock); err != nil {
			return err
		}
		have, err := existingColumns(ctx, tx, tg.ident)
		if err != nil {
			return err
		}
		if have == nil && !create {
			const fix = "restart the sync, which creates the table, and sync the table again from a snapshot"
			return failure.WithFix(errors.New("the table does not exist (dropped while the sync ran?); "+fix), fix)
		}
		if have == nil {
			created = true
			return s.create(ctx, tx, tg)
		}
		return s.check(ctx, tx, tg, have)
	})
	if err != nil {
		var sce *sink.SchemaChangeError
		if errors.As(err, &sce) {
			return err
		}
		return s.secrets.Error(fmt.Errorf("%s: prepare table %s for source table %s: %w", s.where, tg.label, t, err))
	}
	s.mu.Lock()
	s.targets[t.String()] = tg
	s.owners[tg.label] = t.String()
	s.known[tg.label] = true
	s.mu.Unlock()
	log := s.log.WithFields(logrus.Fields{"table": t.String(), "target": tg.label, "pk": t.PK})
	if created {
		log.Info("pg sink: table created")
	} else {
		log.Debug("pg sink: existing table checked")
	}
	return nil
}

// plan maps t's columns; it fails for a table the sink cannot copy.
func (s *Sink) plan(t *sink.Table) (*target, error) {
	if len(t.PK) == 0 {
		return nil, failure.Permanent(fmt.Errorf("pg sink: source table %s has no primary key: the sink finds the row to update or delete by it; add one to the source table (ALTER TABLE %s ADD PRIMARY KEY (...)) or leave the table out of the sync", t, t))
	}
	schema, name := s.targetName(t)
	for _, n := range []string{schema, name} {
		if n == "" || len(n) > maxIdentifier {
			return nil, failure.Permanent(fmt.Errorf("pg sink: source table %s would be the PostgreSQL table %q.%q, and %q is empty or longer than PostgreSQL's %d-byte identifiers; name its target (Config.TableName)",
				t, schema, name, n, maxIdentifier))
		}
	}
	tg := &target{
		src:     t,
		schema:  schema,
		name:    name,
		ident:   pgx.Identifier{schema, name}.Sanitize(),
		label:   schema + "." + name,
		cols:    map[string]*column{},
		version: pgx.Identifier{s.cfg.VersionColumn}.Sanitize(),
	}
	var problems []string
	for _, c := range t.Columns {
		if c.Name == s.cfg.VersionColumn {
			problems = append(problems, fmt.Sprintf("column %q has the name of the sink's version column; set Config.VersionColumn to a name no synced table uses", c.Name))
			continue
		}
		if len(c.Name) > maxIdentifier {
			problems = append(problems, fmt.Sprintf("column %q is longer than PostgreSQL's %d-byte identifiers", c.Name, maxIdentifier))
			continue
		}
		m, err := mapColumn(c)
		if err != nil {
			problems = append(problems, err.Error()+"; leave the table out of the sync")
			continue
		}
		col := &column{name: c.Name, ident: pgx.Identifier{c.Name}.Sanitize(), m: m, cast: m.format}
		tg.cols[c.Name] = col
		tg.order = append(tg.order, col)
	}
	for _, k := range t.PK {
		c, ok := tg.cols[k]
		if !ok {
			problems = append(problems, fmt.Sprintf("primary key column %q is not among the table's columns", k))
			continue
		}
		tg.pk = append(tg.pk, c)
	}
	if len(problems) > 0 {
		return nil, failure.Permanent(fmt.Errorf("pg sink: source table %s cannot be copied: %s", t, strings.Join(problems, "; ")))
	}
	return tg, nil
}

// pgColumn is an existing column of a PostgreSQL table.
type pgColumn struct {
	typ     string // format_type
	notNull bool
}

// existingColumns returns the columns of table ident, nil when it does not
// exist.
func existingColumns(ctx context.Context, tx pgx.Tx, ident string) (map[string]pgColumn, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, ident)
	if err != nil {
		return nil, err
	}
	var have map[string]pgColumn
	for rows.Next() {
		var name string
		var c pgColumn
		if err := rows.Scan(&name, &c.typ, &c.notNull); err != nil {
			rows.Close()
			return nil, err
		}
		if have == nil {
			have = map[string]pgColumn{}
		}
		have[name] = c
	}
	return have, rows.Err()
}

// create creates the schema and table of tg.
func (s *Sink) create(ctx context.Context, tx pgx.Tx, tg *target) error {
	var b strings.Builder
	b.WriteString("CREATE TABLE " + tg.ident + " (")
	for _, c := range tg.order {
		b.WriteString("\n\t" + c.ident + " " + c.m.ddl)
		if src, _ := tg.src.Column(c.name); !src.Nullable {
			b.WriteString(" NOT NULL")
		}
		b.WriteString(",")
	}
	b.WriteString("\n\t" + tg.version + " text,\n\tPRIMARY KEY (" + identList(tg.pk) + "))")
	for _, q := range []string{"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{tg.schema}.Sanitize(), b.String()} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// check compares an existing table with tg; every problem goes into one
// *sink.SchemaChangeError whose Fix lists the statements that solve them.
// Columns the source does not have are left alone.
func (s *Sink) check(ctx context.Context, tx pgx.Tx, tg *target, have map[string]pgColumn) error {
	var what, fix []string
	for _, c := range tg.order {
		src, _ := tg.src.Column(c.name)
		h, ok := have[c.name]
		switch {
		case !ok:
			what = append(what, fmt.Sprintf("column %q (source type %s) is missing", c.name, c.m.source))
			fix = append(fix, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s;", tg.ident, c.ident, c.m.ddl))
			continue
		case !compatible(c.m, h.typ):
			what = append(what, fmt.Sprintf("column %q is %s, which cannot hold every value of the source type %s (it needs %s)", c.name, h.typ, c.m.source, c.m.ddl))
			fix = append(fix, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s;", tg.ident, c.ident, c.m.ddl, c.ident, c.m.ddl))
		}
		if h.notNull && src.Nullable {
			what = append(what, fmt.Sprintf("column %q is NOT NULL, the source's is nullable", c.name))
			fix = append(fix, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL;", tg.ident, c.ident))
		}
		c.cast = h.typ
	}
	if v, ok := have[s.cfg.VersionColumn]; !ok {
		what = append(what, fmt.Sprintf("the version column %q is missing", s.cfg.VersionColumn))
		fix = append(fix, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s text;", tg.ident, tg.version))
	} else if v.typ != "text" && v.typ != "character varying" {
		what = append(what, fmt.Sprintf("the version column %q is %s, not text", s.cfg.VersionColumn, v.typ))
		fix = append(fix, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE text;", tg.ident, tg.version))
	} else if v.notNull {
		what = append(what, fmt.Sprintf("the version column %q is NOT NULL", s.cfg.VersionColumn))
		fix = append(fix, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL;", tg.ident, tg.version))
	}
	keys, err := uniqueKeys(ctx, tx, tg.ident)
	if err != nil {
		return err
	}
	pk := make([]string, len(tg.pk))
	for i, c := range tg.pk {
		pk[i] = c.name
	}
	sort.Strings(pk)
	if !slices.ContainsFunc(keys, func(k []string) bool { return slices.Equal(k, pk) }) {
		what = append(what, fmt.Sprintf("no primary key or unique index on exactly the source's primary key columns (%s)", identList(tg.pk)))
		fix = append(fix, fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (%s);", tg.ident, identList(tg.pk)))
	}
	if len(what) == 0 {
		return nil
	}
	return &sink.SchemaChangeError{
		Table: tg.src.String(),
		What:  fmt.Sprintf("the PostgreSQL table %s does not fit the source table: %s", tg.label, strings.Join(what, "; ")),
		Fix:   fmt.Sprintf("run on PostgreSQL: %s (or drop the table %s, which the sync then creates, and sync the table again from a snapshot)", strings.Join(fix, " "), tg.ident),
	}
}

// uniqueKeys returns the column sets (sorted names) of the primary key and
// unique indexes of table ident that ON CONFLICT can use (no expression,
// no predicate).
func uniqueKeys(ctx context.Context, tx pgx.Tx, ident string) ([][]string, error) {
	rows, err := tx.Query(ctx, `SELECT array_agg(a.attname::text ORDER BY a.attname)
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) AS k(attnum)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = to_regclass($1) AND (i.indisprimary OR i.indisunique)
		  AND i.indpred IS NULL AND i.indexprs IS NULL
		GROUP BY i.indexrelid`, ident)
	if err != nil {
		return nil, err
	}
	var keys [][]string
	for rows.Next() {
		var k []string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, err
		}
		sort.Strings(k) // the database's collation may order differently
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// identList is the sanitized names of cols joined by ", ".
func identList(cols []*column) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = c.ident
	}
	return strings.Join(s, ", ")
}

// prepared returns the target of t, preparing it when it was not (or was
// prepared with another description of the table). With create, it creates
// a missing table unless this sink prepared it before (a table dropped
// while the sync runs is not silently created empty again).
func (s *Sink) prepared(ctx context.Context, t *sink.Table, create bool) (*target, error) {
	s.mu.Lock()
	tg := s.targets[t.String()]
	schema, name := s.targetName(t)
	known := s.known[schema+"."+name]
	s.mu.Unlock()
	if tg != nil && tg.src == t {
		return tg, nil
	}
	if err := s.prepare(ctx, t, create && !known); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.targets[t.String()], nil
}
