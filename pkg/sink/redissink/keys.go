package redissink

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dbsync/dbsync/pkg/sink"
)

// keyPattern is a parsed Config.KeyPattern: the text before and after its
// one {pk}, each still holding {db} and {table}.
type keyPattern struct {
	raw, before, after string
}

// parseKeyPattern checks that p holds {pk} exactly once and no placeholder
// other than {db}, {table} and {pk}.
func parseKeyPattern(p string) (keyPattern, error) {
	if n := strings.Count(p, "{pk}"); n != 1 {
		return keyPattern{}, fmt.Errorf("redis sink: key pattern %q holds {pk} %d times; it needs it exactly once (every row its own key), e.g. %q", p, n, DefaultKeyPattern)
	}
	rest := strings.NewReplacer("{db}", "", "{table}", "", "{pk}", "").Replace(p)
	if i := strings.IndexByte(rest, '{'); i >= 0 {
		return keyPattern{}, fmt.Errorf("redis sink: key pattern %q holds an unknown placeholder near %q; the placeholders are {db}, {table} and {pk}", p, rest[i:])
	}
	before, after, _ := strings.Cut(p, "{pk}")
	return keyPattern{raw: p, before: before, after: after}, nil
}

// tableKeys builds the row keys of one table.
type tableKeys struct {
	table         *sink.Table
	before, after string
}

// forTable fills in t's {db} and {table} (escaped like key values).
func (k keyPattern) forTable(t *sink.Table) tableKeys {
	r := strings.NewReplacer("{db}", escapeKeyPart(t.DB), "{table}", escapeKeyPart(t.Name))
	return tableKeys{table: t, before: r.Replace(k.before), after: r.Replace(k.after)}
}

// key returns the key of the row whose primary key values image holds
// (values missing from image are taken from fallback, when not nil). It
// fails with a *sink.SchemaChangeError when a key column is in neither.
func (tk tableKeys) key(image, fallback map[string]json.RawMessage) (string, error) {
	pk := tk.table.PK
	var b strings.Builder
	b.WriteString(tk.before)
	for i, col := range pk {
		v, ok := image[col]
		if !ok && fallback != nil {
			v, ok = fallback[col]
		}
		if !ok {
			return "", &sink.SchemaChangeError{
				Table: tk.table.String(),
				What:  fmt.Sprintf("primary key column %q is not in the change's row image", col),
				Fix:   "the source table's primary key changed: delete the table's keys from Redis and sync the table again from a snapshot",
			}
		}
		s, null := typedValue(v)
		if null {
			return "", fmt.Errorf("redis sink: table %s: primary key column %q is null in the change's row image (a primary key is never null; a corrupt change?)", tk.table, col)
		}
		if len(pk) == 1 {
			b.WriteString(s)
			break
		}
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(escapeKeyPart(s))
	}
	b.WriteString(tk.after)
	return b.String(), nil
}

// escapeKeyPart escapes "\" as "\\" and ":" as "\:", so that parts joined
// by ":" split back unambiguously.
func escapeKeyPart(s string) string {
	if !strings.ContainsAny(s, `\:`) {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
}

// typedValue is the "typed" form of a contract JSON value: a string's
// content, anything else (number, true/false, array, object) its JSON text
// as is; null reports null.
func typedValue(v json.RawMessage) (s string, null bool) {
	if len(v) == 0 {
		return "", true
	}
	switch v[0] {
	case '"':
		if !strings.ContainsRune(string(v), '\\') {
			return string(v[1 : len(v)-1]), false
		}
		var out string
		if err := json.Unmarshal(v, &out); err == nil {
			return out, false
		}
		return string(v), false
	case 'n':
		if string(v) == "null" {
			return "", true
		}
	}
	return string(v), false
}
