// Package decode turns the row images of dbsync envelopes into Go structs:
// the consumer SDK's (pkg/client) decoder, behind client.NewDecoder.
package decode

import (
	"database/sql"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Options control how row values become Go values.
type Options struct {
	// Location is where DATETIME (and DATE) values, which carry no zone, are
	// interpreted; nil means UTC. TIMESTAMP values carry "Z" and are always
	// the exact instant (returned in Location for display, same instant).
	Location *time.Location
	// Strict makes a column that has no struct field an error (default:
	// ignored).
	Strict bool
	// Database, for Decode, makes a struct without a TableName() method
	// name the table Database + "." + the snake_case of its type name, so an
	// envelope of another table is an error (Subscribe checks the
	// subscribed table itself).
	Database string
}

// FieldError reports a column value that does not fit its struct field. Its
// message names the table, column and field, e.g.
// `table shop.orders column "qty" -> field Order.Qty (int8): value 300 overflows int8`.
// With Options.Strict, a column no field maps to is a FieldError with an
// empty Field.
type FieldError struct {
	// Table is "db.table" as given to Decode.
	Table string
	// Column is the column name as it appears in the row image.
	Column string
	// Field is the struct field in Type.Field form (embedded structs add
	// their names: "User.Model.ID"); empty for an unmapped column.
	Field string
	// Err says what is wrong with the value.
	Err error

	goType string // the field's Go type, for the message
}

// Error implements error.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString("table ")
	b.WriteString(e.Table)
	b.WriteString(" column ")
	b.WriteString(strconv.Quote(e.Column))
	if e.Field != "" {
		b.WriteString(" -> field ")
		b.WriteString(e.Field)
		if e.goType != "" {
			b.WriteString(" (")
			b.WriteString(e.goType)
			b.WriteString(")")
		}
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid value")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// Decoder is the decoding plan of one struct type: which column goes to which
// field and how its JSON value is converted. It is immutable once built and
// safe for concurrent use; build it once per type.
type Decoder struct {
	typ    reflect.Type
	loc    *time.Location
	strict bool
	// byCol maps the lower-cased column name to its field plan.
	byCol map[string]*fieldPlan
}

// fieldPlan is the plan of one mapped struct field.
type fieldPlan struct {
	column  string // column name as mapped (tag or SnakeCase)
	name    string // "Type.Field" for messages
	goType  string // the field's Go type for messages
	index   []int  // field index path from the root struct
	viaPtr  bool   // the path goes through an embedded pointer that may need allocating
	depth   int    // embedding depth; a shallower field shadows a deeper one
	order   int    // declaration order, to report errors deterministically
	set     setter
	colLess string // lower-cased column
}

// valueCtx is what a setter needs to know about the call besides the value.
type valueCtx struct {
	loc    *time.Location
	binary []string
	column string
}

// binState says whether a column's string values are base64 bytes.
type binState int

const (
	binUnknown binState = iota // the producer did not say (binary list nil)
	binNo
	binYes
)

func (c valueCtx) binaryState() binState {
	if c.binary == nil {
		return binUnknown
	}
	for _, b := range c.binary {
		if b == c.column || strings.EqualFold(b, c.column) {
			return binYes
		}
	}
	return binNo
}

// setter stores the JSON value raw (non-empty, no surrounding space) into
// the addressable value v. It sets v only on success.
type setter func(v reflect.Value, raw []byte, c valueCtx) error

// New builds the decoding plan of struct type t, with the mapping rules
// client.NewDecoder documents.
func New(t reflect.Type, opts Options) (*Decoder, error) {
	if t == nil {
		return nil, errors.New("client: NewDecoder needs a struct type, got nil")
	}
	if t.Kind() != reflect.Struct {
		hint := ""
		if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
			hint = fmt.Sprintf(" (pass the struct type %s, e.g. reflect.TypeOf(%s{}), not a pointer)", t.Elem(), t.Elem())
		}
		return nil, fmt.Errorf("client: NewDecoder needs a struct type, got %s%s", t, hint)
	}
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	d := &Decoder{typ: t, loc: loc, strict: opts.Strict, byCol: map[string]*fieldPlan{}}

	root := t.Name()
	if root == "" {
		root = "struct"
	}
	var fields []*fieldPlan
	collect(t, root, nil, "", 0, false, map[reflect.Type]bool{t: true}, &fields)

	for _, f := range fields {
		prev, ok := d.byCol[f.colLess]
		switch {
		case !ok || f.depth < prev.depth:
			d.byCol[f.colLess] = f
		case f.depth == prev.depth:
			return nil, fmt.Errorf("client: NewDecoder(%s): fields %s and %s both map to column %q; "+
				"give one of them another name with a db:\"...\" tag or skip it with db:\"-\"",
				t, prev.name, f.name, f.column)
		}
	}
	return d, nil
}

// collect appends the plans of t's fields to out, flattening embedded
// structs. visiting guards against recursive embedding through pointers.
func collect(t reflect.Type, path string, index []int, prefix string, depth int, viaPtr bool,

	visiting map[reflect.Type]bool, out *[]*fieldPlan) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, skip, explicit, embedded, embPrefix := fieldName(sf)
		if skip {
			continue
		}
		ft := sf.Type
		isPtr := ft.Kind() == reflect.Pointer
		if isPtr {
			ft = ft.Elem()
		}
		idx := append(append([]int(nil), index...), i)
		flatten := ft.Kind() == reflect.Struct && !isValueType(ft) &&
			((sf.Anonymous && !explicit) || (embedded && !explicit))
		if flatten {
			// The exported fields of an unexported embedded struct are
			// settable, but a nil unexported embedded pointer cannot be
			// allocated through reflection.
			if (!sf.IsExported() && isPtr) || visiting[ft] {
				continue
			}
			visiting[ft] = true
			collect(ft, path+"."+sf.Name, idx, prefix+embPrefix, depth+1, viaPtr || isPtr, visiting, out)
			delete(visiting, ft)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = SnakeCase(sf.Name)
		}
		col := prefix + name
		*out = append(*out, &fieldPlan{
			column:  col,
			colLess: strings.ToLower(col),
			name:    path + "." + sf.Name,
			goType:  sf.Type.String(),
			index:   idx,
			viaPtr:  viaPtr,
			depth:   depth,
			order:   len(*out),
			set:     setterFor(sf.Type),
		})
	}
}

// Decode fills the struct dst points to (a non-nil pointer to a value of the
// Decoder's type) from one row image. table is "db.table" for error messages.
// binary lists the columns whose values are base64 bytes (the envelope's
// "binary" field). nil means "unknown" (an old producer): then []byte fields
// base64-decode strings and string fields take strings as they are. A v1
// envelope omits "binary" when the table has no binary column, so a caller
// that knows its envelope is v1 should pass a non-nil empty slice in that case.
//
// Columns absent from img leave their fields untouched; columns no field maps
// to are ignored (an error with Options.Strict). Conversion follows the
// type contract of docs/envelope.md exactly and never stores a silent zero: a
// value that does not fit its field (wrong JSON kind, overflow, a fraction
// into an integer, unparseable text) is an error. All columns are attempted;
// when several fail, the error of the first field in declaration order is
// returned (then the unmapped column first by name), as a *FieldError. A dst of
// the wrong type is a plain error.
func (d *Decoder) Decode(dst any, table string, img map[string]json.RawMessage, binary []string) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Type().Elem() != d.typ {
		return fmt.Errorf("client: decoding a row of %s needs a non-nil *%s, got %T", table, d.typ, dst)
	}
	sv := rv.Elem()
	ctx := valueCtx{loc: d.loc, binary: binary}
	var (
		bestErr   *FieldError
		bestOrder = math.MaxInt
	)
	for col, raw := range img {
		f := d.byCol[col]
		if f == nil {
			if lc := strings.ToLower(col); lc != col {
				f = d.byCol[lc]
			}
		}
		if f == nil {
			if d.strict && (bestErr == nil || (bestOrder == math.MaxInt && col < bestErr.Column)) {
				bestErr = &FieldError{Table: table, Column: col, Err: fmt.Errorf(
					"no field of %s maps to this column and DecodeOptions.Strict is set; add a field "+
						"(e.g. tagged db:%q) or turn Strict off", d.typ, col)}
			}
			continue
		}
		ctx.column = col
		if err := f.set(d.fieldValue(sv, f), trim(raw), ctx); err != nil {
			if f.order < bestOrder {
				bestErr = &FieldError{Table: table, Column: col, Field: f.name, Err: err, goType: f.goType}
				bestOrder = f.order
			}
		}
	}
	if bestErr != nil {
		return bestErr
	}
	return nil
}

// fieldValue returns the field f of the struct sv, allocating nil embedded
// pointers on the way.
func (d *Decoder) fieldValue(sv reflect.Value, f *fieldPlan) reflect.Value {
	if !f.viaPtr {
		if len(f.index) == 1 {
			return sv.Field(f.index[0])
		}
		return sv.FieldByIndex(f.index)
	}
	v := sv
	for i, x := range f.index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// isValueType reports whether struct type t is decoded as one value
// rather than flattened into columns.
func isValueType(t reflect.Type) bool {
	if t == reflect.TypeFor[time.Time]() || isSQLNull(t) {
		return true
	}
	pt := reflect.PointerTo(t)
	return pt.Implements(reflect.TypeFor[sql.Scanner]()) || pt.Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

// isSQLNull reports whether t is one of database/sql's Null types
// (NullString, NullInt64, ..., NullTime, Null[T]): a value field followed by
// Valid bool.
func isSQLNull(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() == "database/sql" && strings.HasPrefix(t.Name(), "Null") &&
		t.NumField() == 2 && t.Field(1).Name == "Valid" && t.Field(1).Type.Kind() == reflect.Bool
}

// setterFor builds the setter for Go type t.
func setterFor(t reflect.Type) setter {
	switch {
	case t == reflect.TypeFor[json.RawMessage]():
		return setRawMessage
	case t.Kind() == reflect.Pointer:
		return ptrSetter(t)
	case t == reflect.TypeFor[time.Time]():
		return setTime
	case t == reflect.TypeFor[time.Duration]():
		return durationSetter(t)
	case isSQLNull(t):
		return nullSetter(t)
	}
	if t.Kind() != reflect.Interface {
		pt := reflect.PointerTo(t)
		scan := pt.Implements(reflect.TypeFor[sql.Scanner]())
		text := pt.Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
		if scan || text {
			return customSetter(t, scan, text)
		}
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intSetter(t)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return uintSetter(t)
	case reflect.Float32, reflect.Float64:
		return floatSetter(t)
	case reflect.Bool:
		return boolSetter(t)
	case reflect.String:
		return setString
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.Uint8:
			return setBytes
		case reflect.String:
			return stringsSetter(t)
		}
		return jsonSetter(t)
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return byteArraySetter(t)
		}
		return jsonSetter(t)
	case reflect.Map, reflect.Struct, reflect.Interface:
		return jsonSetter(t)
	}
	return func(_ reflect.Value, _ []byte, _ valueCtx) error {
		return fmt.Errorf("a %s field cannot hold a row value; skip it with db:\"-\"", t)
	}
}

// ---- value classification and messages

// ---- numbers

// ---- strings and bytes

// ---- pointers, sql.Null*, custom types

// ---- time
