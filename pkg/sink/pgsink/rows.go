package pgsink

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dbsync/dbsync/pkg/sink"
)

// Rows returns the rows PostgreSQL holds for source table t, for checks
// that compare them with the source value for value: the primary key's
// JSON array ("[7]", "[\"a\",2]", as the contract writes the key values) →
// column → value in the contract's JSON form (docs/envelope.md), converted
// back from PostgreSQL, for the source's columns only (no version column).
// Every value is the bytes the producer writes for it, but a JSON column's,
// which is jsonb's normal form (keys ordered, no duplicate keys, compact):
// equal as JSON, not necessarily byte for byte (1e+300 comes back in
// digits). It checks t's table first as Prepare does, but does not create
// it, and reads the whole table at once: a checking aid, not for large
// tables. It fails naming the table and column.
func (s *Sink) Rows(ctx context.Context, t *sink.Table) (map[string]map[string]json.RawMessage, error) {
	tg, err := s.prepared(ctx, t, false)
	if err != nil {
		return nil, err
	}
	exprs := make([]string, len(tg.order))
	for i, c := range tg.order {
		exprs[i] = selectExpr(c)
	}
	rows, err := s.pool.Query(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM "+tg.ident)
	if err != nil {
		return nil, s.secrets.Error(fmt.Errorf("%s: read table %s: %w", s.where, tg.label, err))
	}
	defer rows.Close()
	out := map[string]map[string]json.RawMessage{}
	for rows.Next() {
		dest := make([]any, len(tg.order))
		for i, c := range tg.order {
			dest[i] = scanDest(c)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("%s: read table %s: %w", s.where, tg.label, err)
		}
		row := make(map[string]json.RawMessage, len(tg.order))
		for i, c := range tg.order {
			v, err := contractValue(c, dest[i])
			if err != nil {
				return nil, fmt.Errorf("%s: table %s column %q: %w", s.where, tg.label, c.name, err)
			}
			row[c.name] = v
		}
		key := []byte{'['}
		for i, c := range tg.pk {
			if i > 0 {
				key = append(key, ',')
			}
			key = append(key, row[c.name]...)
		}
		out[string(append(key, ']'))] = row
	}
	if err := rows.Err(); err != nil {
		return nil, s.secrets.Error(fmt.Errorf("%s: read table %s: %w", s.where, tg.label, err))
	}
	return out, nil
}
