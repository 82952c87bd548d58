package pgsink

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dbsync/dbsync/pkg/sink"
)

// segment returns how many of ops, from the first, one multi-row statement
// writes with exactly the effect of one statement per change in order:
// upserts carrying the same columns, or deletes, of keys distinct within
// the run (a repeated key ends it: the later change must see the earlier
// one's row). A key-changing update, and a change whose version's tail is
// not of the fixed width (the multi-row upsert reads the change's head and
// tail back from the version it writes), is a run of its own.
//
// Distinct keys are distinct rows, and the changes of distinct rows do not
// see each other (an upsert reads its own row and its own key's
// tombstone; a delete writes those of its key): their order within one
// statement does not matter. Two key texts of one PostgreSQL value (the
// decimals 1.5 and 1.50) are one row that one upsert statement cannot
// touch twice: PostgreSQL fails the statement, and Apply runs the batch
// again with one statement per change.
func segment(ops []op) int {
	first := &ops[0]
	if first.kind == opMove || len(first.tail) != sink.VersionTailLen {
		return 1
	}
	n := 1
	var seen map[string]bool
	for ; n < len(ops); n++ {
		o := &ops[n]
		if o.kind != first.kind || len(o.tail) != sink.VersionTailLen ||
			o.kind == opUpsert && !slices.Equal(o.cols, first.cols) {
			break
		}
		if seen == nil {
			seen = map[string]bool{first.key.text: true}
		}
		if seen[o.key.text] {
			break
		}
		seen[o.key.text] = true
	}
	return n
}

// multiRow returns the statements writing ops, a run segment allows, with
// one statement per row set (the rows' values in arrays, one per column,
// unnested): an upsert, or a deletion and the tombstones.
func (s *Sink) multiRow(tg *target, ops []op) []stmt {
	if ops[0].kind == opDelete {
		return s.removeRows(tg, ops)
	}
	return []stmt{s.upsertRows(tg, ops)}
}

// upsertRows is the statement writing the columns of ops (upserts of one
// column set, distinct keys) at their keys: each row as upsert writes it,
// unless the row or its tombstone has a version at or after its change's.
// The version check of the update reads the change's head and tail from
// the version the row would get (EXCLUDED), which is head + "|" + tail.
func (s *Sink) upsertRows(tg *target, ops []op) stmt {
	cols := ops[0].cols
	args := make([]any, 0, len(cols)+5)
	names := make([]string, 0, len(cols)+1)
	exprs := make([]string, 0, len(cols)+1)
	arrays := make([]string, 0, len(cols)+4)
	aliases := make([]string, 0, len(cols)+4)
	sets := make([]string, 0, len(cols)+1)
	vals := make([]any, len(ops))
	for j, c := range cols {
		for i := range ops {
			vals[i] = ops[i].vals[j]
		}
		a, typ := arrayParam(c, vals)
		args = append(args, a)
		alias := fmt.Sprintf("c%d", j)
		arrays = append(arrays, fmt.Sprintf("$%d::%s", len(args), typ))
		aliases = append(aliases, alias)
		names = append(names, c.ident)
		exprs = append(exprs, "u."+alias+"::"+c.cast)
		sets = append(sets, c.ident+" = EXCLUDED."+c.ident)
	}
	versions, keys, heads, tails := make([]string, len(ops)), make([]string, len(ops)), make([]string, len(ops)), make([]string, len(ops))
	for i := range ops {
		o := &ops[i]
		versions[i], keys[i], heads[i], tails[i] = o.head+"|"+o.tail, o.key.text, o.head, o.tail
	}
	for _, a := range []struct {
		alias  string
		values []string
	}{{"v", versions}, {"k", keys}, {"h", heads}, {"t", tails}} {
		args = append(args, a.values)
		arrays = append(arrays, fmt.Sprintf("$%d::text[]", len(args)))
		aliases = append(aliases, a.alias)
	}
	args = append(args, tg.label)
	names = append(names, tg.version)
	exprs = append(exprs, "u.v")
	sets = append(sets, tg.version+" = EXCLUDED."+tg.version)
	// OFFSET 0 keeps the tombstone check a subquery run per row (a lookup
	// of the deleted table's primary key) rather than an anti-join the
	// planner may make a scan of every tombstone.
	q := fmt.Sprintf(`INSERT INTO %s AS dbsync_row (%s) SELECT %s
		FROM unnest(%s) AS u(%s)
		WHERE NOT EXISTS (SELECT 1 FROM %s d WHERE d.tbl = $%d::text AND d.key = u.k AND d.head = u.h AND d.tail COLLATE "C" >= u.t OFFSET 0)
		ON CONFLICT (%s) DO UPDATE SET %s WHERE %s`,
		tg.ident, strings.Join(names, ", "), strings.Join(exprs, ", "),
		strings.Join(arrays, ", "), strings.Join(aliases, ", "),
		s.deleted, len(args),
		identList(tg.pk), strings.Join(sets, ", "),
		versionCond("dbsync_row."+tg.version,
			fmt.Sprintf("left(EXCLUDED.%s, -%d)", tg.version, sink.VersionTailLen+1),
			fmt.Sprintf("right(EXCLUDED.%s, %d)", tg.version, sink.VersionTailLen)))
	return stmt{sql: q, args: args}
}

// removeRows is the deletion of the rows at the keys of ops (deletes of
// distinct keys), each unless its version is at or after its change's,
// and the tombstones recording them.
func (s *Sink) removeRows(tg *target, ops []op) []stmt {
	args := make([]any, 0, len(tg.pk)+2)
	arrays := make([]string, 0, len(tg.pk)+2)
	aliases := make([]string, 0, len(tg.pk)+2)
	where := make([]string, 0, len(tg.pk)+1)
	vals := make([]any, len(ops))
	for j, c := range tg.pk {
		for i := range ops {
			vals[i] = ops[i].key.params[j]
		}
		a, typ := arrayParam(c, vals)
		args = append(args, a)
		alias := fmt.Sprintf("k%d", j)
		arrays = append(arrays, fmt.Sprintf("$%d::%s", len(args), typ))
		aliases = append(aliases, alias)
		where = append(where, fmt.Sprintf("dbsync_row.%s = u.%s::%s", c.ident, alias, c.cast))
	}
	keys, heads, tails := make([]string, len(ops)), make([]string, len(ops)), make([]string, len(ops))
	for i := range ops {
		keys[i], heads[i], tails[i] = ops[i].key.text, ops[i].head, ops[i].tail
	}
	args = append(args, heads, tails)
	arrays = append(arrays, fmt.Sprintf("$%d::text[]", len(args)-1), fmt.Sprintf("$%d::text[]", len(args)))
	aliases = append(aliases, "h", "t")
	where = append(where, versionCond("dbsync_row."+tg.version, "u.h", "u.t"))
	del := fmt.Sprintf("DELETE FROM %s AS dbsync_row USING unnest(%s) AS u(%s) WHERE %s",
		tg.ident, strings.Join(arrays, ", "), strings.Join(aliases, ", "), strings.Join(where, " AND "))
	tomb := `INSERT INTO ` + s.deleted + ` AS d (tbl, key, head, tail, deleted_at)
		SELECT $1::text, u.k, u.h, u.t, now() FROM unnest($2::text[], $3::text[], $4::text[]) AS u(k, h, t)
		` + tombstoneSQL
	return []stmt{{sql: del, args: args}, {sql: tomb, args: []any{tg.label, keys, heads, tails}}}
}

// arrayParam is the array parameter holding vals, parameters of column c
// (param's values), and its type: bytea[] of the bytes for a bytea column,
// else text[] of what PostgreSQL parses (a SET's member names as an array
// literal), which the statement casts to the column's type as it casts a
// single parameter.
func arrayParam(c *column, vals []any) (any, string) {
	if c.m.kind == kindBytes {
		a := make([][]byte, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok && b != nil {
				a[i] = b
			}
		}
		return a, "bytea[]"
	}
	a := make([]pgtype.Text, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			a[i] = pgtype.Text{String: v, Valid: true}
		case []string:
			a[i] = pgtype.Text{String: arrayLiteral(v), Valid: true}
		}
	}
	return a, "text[]"
}

// arrayLiteral is PostgreSQL's literal of a one-dimensional text array
// holding names ('{}' for none): each element quoted, '"' and '\'
// escaped.
func arrayLiteral(names []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(n); j++ {
			if n[j] == '"' || n[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(n[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
