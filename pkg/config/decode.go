package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// FieldError is one problem with one setting. Key is the setting's path,
// e.g. "Mysql.Port" or "Tables.Include[2]". Env names the environment
// variable the value came from, when it came from one.
type FieldError struct {
	Key     string
	Problem string
	Env     string
}

// Error renders "Key: Problem" (plus the environment variable, if any).
func (e *FieldError) Error() string {
	s := e.Key + ": " + e.Problem
	if e.Env != "" {
		s += " (value from environment variable " + e.Env + ")"
	}
	return s
}

// UnknownKeyError is a key in the file that no setting has. Key is its full
// path as written; Suggestion, when not empty, is the closest known key at
// the same level; Known lists every key at that level.
type UnknownKeyError struct {
	Key        string
	Suggestion string
	Known      []string
}

// Error renders `unknown key "Mysql.Passwrd" (did you mean "Password"?)`, or
// lists the known keys when none is close.
func (e *UnknownKeyError) Error() string {
	if e.Suggestion != "" {
		return fmt.Sprintf("unknown key %q (did you mean %q?)", e.Key, e.Suggestion)
	}
	return fmt.Sprintf("unknown key %q (known keys here: %s)", e.Key, strings.Join(e.Known, ", "))
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// decoder walks a JSON document against a struct by reflection, assigning
// each known key (matched like encoding/json: exact name first, then
// case-insensitively) and collecting every unknown key and type error
// instead of stopping at the first.
type decoder struct {
	problems []error
	bad      map[string]bool // key paths whose value could not be decoded
}

func (d *decoder) fail(key string, err error) {
	d.problems = append(d.problems, err)
	if d.bad == nil {
		d.bad = map[string]bool{}
	}
	d.bad[key] = true
}

// decodeStruct decodes the JSON object raw into the struct v; prefix is v's
// key path ("" for the top level).
func (d *decoder) decodeStruct(raw json.RawMessage, v reflect.Value, prefix string) {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		return
	}
	var obj map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
		if prefix == "" {
			d.fail(prefix, errors.New("the top level must be a JSON object {...}, got "+describeJSON(raw)))
			return
		}
		d.fail(prefix, &FieldError{Key: prefix, Problem: "got " + describeJSON(raw) + ", want an object {...}"})
		return
	}
	t := v.Type()
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() {
			names = append(names, t.Field(i).Name)
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	// Known keys in field order, then unknown keys alphabetically, so
	// problems are listed in the order of the documentation.
	rank := func(k string) int {
		if i := slices.Index(names, matchField(k, names)); i >= 0 {
			return i
		}
		return len(names)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := rank(keys[i]), rank(keys[j])
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	seen := map[string]string{} // field name -> key that set it
	for _, k := range keys {
		name := matchField(k, names)
		if name == "" {
			d.problems = append(d.problems, &UnknownKeyError{
				Key:        joinKey(prefix, k),
				Suggestion: closest(k, names),
				Known:      names,
			})
			continue
		}
		path := joinKey(prefix, name)
		if prev, dup := seen[name]; dup {
			d.fail(path, &FieldError{Key: path, Problem: fmt.Sprintf("given twice, as %q and %q (keys match case-insensitively); keep one", prev, k)})
			continue
		}
		seen[name] = k
		f, _ := t.FieldByName(name)
		fv := v.FieldByIndex(f.Index)
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(unmarshalerType) {
			d.decodeStruct(obj[k], fv, path)
			continue
		}
		d.decodeLeaf(obj[k], fv, path, f.Tag.Get("secret") == "true")
	}
}

// decodeLeaf decodes one non-struct value with encoding/json, starting from
// the field's current value (so null keeps the default). The value of a
// secret setting is never quoted in a problem.
func (d *decoder) decodeLeaf(raw json.RawMessage, fv reflect.Value, path string, secret bool) {
	p := reflect.New(fv.Type())
	p.Elem().Set(fv)
	if err := json.Unmarshal(raw, p.Interface()); err != nil {
		var te *json.UnmarshalTypeError
		problem := "got a value encoding/json cannot read"
		if !secret {
			problem = err.Error()
		}
		if errors.As(err, &te) {
			got := describeJSON(bytes.TrimSpace(raw))
			if secret {
				got = kindOfJSON(bytes.TrimSpace(raw))
			}
			problem = "got " + got + ", want " + wantType(fv.Type())
		}
		d.fail(path, &FieldError{Key: path, Problem: problem})
		return
	}
	fv.Set(p.Elem())
}

// wantType describes what JSON value a Go type accepts.
func wantType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Uint32:
		return "an integer 0-4294967295"
	case reflect.Bool:
		return "true or false"
	case reflect.Pointer:
		return wantType(t.Elem())
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(wantType(t.Elem()), "a "), "an ") + "s"
	}
	return t.String()
}

// matchField finds the field a JSON key sets, as encoding/json does: an
// exact name first, else a case-insensitive match; "" if none.
func matchField(key string, names []string) string {
	for _, n := range names {
		if n == key {
			return n
		}
	}
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return n
		}
	}
	return ""
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// closest returns the name nearest to key (case-insensitive edit distance),
// if it is close enough to be a plausible typo; else "".
func closest(key string, names []string) string {
	best, bestDist := "", -1
	k := strings.ToLower(key)
	for _, n := range names {
		dist := editDistance(k, strings.ToLower(n))
		if bestDist < 0 || dist < bestDist {
			best, bestDist = n, dist
		}
	}
	limit := max(2, utf8.RuneCountInString(key)/3)
	if bestDist >= 0 && bestDist <= limit && bestDist < utf8.RuneCountInString(key) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// syntaxError turns a JSON syntax error into "source:line:col: ..." pointing
// at the offending character (or at the end of the text when it ends early).
func syntaxError(source string, data []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: invalid JSON: %w", source, err)
	}
	pos := int(se.Offset) - 1
	if strings.Contains(se.Error(), "unexpected end") {
		pos = len(bytes.TrimRight(data, " \t\r\n"))
	}
	pos = max(0, min(pos, len(data)))
	line := 1 + bytes.Count(data[:pos], []byte("\n"))
	lineStart := bytes.LastIndexByte(data[:pos], '\n') + 1
	col := 1 + utf8.RuneCount(data[lineStart:pos])
	return fmt.Errorf("%s:%d:%d: invalid JSON: %w", source, line, col, err)
}
