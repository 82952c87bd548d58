package client

import (
	"bytes"
	"database/sql"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DecodeOptions control how row values become Go values.
type DecodeOptions struct {
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
// With DecodeOptions.Strict, a column no field maps to is a FieldError with an
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
	byCol map[string]*decField
}

// decField is the plan of one mapped struct field.
type decField struct {
	column  string // column name as mapped (tag or SnakeCase)
	name    string // "Type.Field" for messages
	goType  string // the field's Go type for messages
	index   []int  // field index path from the root struct
	viaPtr  bool   // the path goes through an embedded pointer that may need allocating
	depth   int    // embedding depth; a shallower field shadows a deeper one
	order   int    // declaration order, to report errors deterministically
	set     decSetter
	colLess string // lower-cased column
}

// decCtx is what a setter needs to know about the call besides the value.
type decCtx struct {
	loc    *time.Location
	binary []string
	column string
}

// decBin says whether a column's string values are base64 bytes.
type decBin int

const (
	decBinUnknown decBin = iota // the producer did not say (binary list nil)
	decBinNo
	decBinYes
)

func (c decCtx) binaryState() decBin {
	if c.binary == nil {
		return decBinUnknown
	}
	for _, b := range c.binary {
		if b == c.column || strings.EqualFold(b, c.column) {
			return decBinYes
		}
	}
	return decBinNo
}

// decSetter stores the JSON value raw (non-empty, no surrounding space) into
// the addressable value v. It sets v only on success.
type decSetter func(v reflect.Value, raw []byte, c decCtx) error

// NewDecoder builds the decoding plan for struct type t (a struct type, not a
// pointer to one). Every exported field maps to one column: a `db:"name"` tag
// first (`db:"-"` skips the field), else gorm's `gorm:"column:name"`
// (`gorm:"-"`, `gorm:"-:all"` and `gorm:"->:false"` skip), else a
// `json:"name"` tag (`json:"-"` skips; options after the comma are ignored),
// else SnakeCase of the field name. Anonymous struct fields (and pointers to
// structs), and fields tagged `gorm:"embedded"` (with an optional
// `embeddedPrefix:`), are flattened like gorm does, unless they are a value
// type of their own (time.Time, sql.Null*, a sql.Scanner or
// encoding.TextUnmarshaler) or an anonymous one carries a tag naming a column.
// Column names match case-insensitively. A field shadows a deeper embedded
// field of the same column, as in Go; two fields at the same depth claiming one
// column make NewDecoder fail naming both. Fields of types that cannot hold any
// row value (chan, func, complex, ...) are accepted and fail at Decode time
// when their column appears.
func NewDecoder(t reflect.Type, opts DecodeOptions) (*Decoder, error) {
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
	d := &Decoder{typ: t, loc: loc, strict: opts.Strict, byCol: map[string]*decField{}}

	root := t.Name()
	if root == "" {
		root = "struct"
	}
	var fields []*decField
	decCollect(t, root, nil, "", 0, false, map[reflect.Type]bool{t: true}, &fields)

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

// decCollect appends the plans of t's fields to out, flattening embedded
// structs. visiting guards against recursive embedding through pointers.
func decCollect(t reflect.Type, path string, index []int, prefix string, depth int, viaPtr bool,
	visiting map[reflect.Type]bool, out *[]*decField) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, skip, explicit, embedded, embPrefix := decFieldName(sf)
		if skip {
			continue
		}
		ft := sf.Type
		isPtr := ft.Kind() == reflect.Pointer
		if isPtr {
			ft = ft.Elem()
		}
		idx := append(append([]int(nil), index...), i)
		flatten := ft.Kind() == reflect.Struct && !decIsValueType(ft) &&
			((sf.Anonymous && !explicit) || (embedded && !explicit))
		if flatten {
			// The exported fields of an unexported embedded struct are
			// settable, but a nil unexported embedded pointer cannot be
			// allocated through reflection.
			if (!sf.IsExported() && isPtr) || visiting[ft] {
				continue
			}
			visiting[ft] = true
			decCollect(ft, path+"."+sf.Name, idx, prefix+embPrefix, depth+1, viaPtr || isPtr, visiting, out)
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
		*out = append(*out, &decField{
			column:  col,
			colLess: strings.ToLower(col),
			name:    path + "." + sf.Name,
			goType:  sf.Type.String(),
			index:   idx,
			viaPtr:  viaPtr,
			depth:   depth,
			order:   len(*out),
			set:     decSetterFor(sf.Type),
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
// to are ignored (an error with DecodeOptions.Strict). Conversion follows the
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
	ctx := decCtx{loc: d.loc, binary: binary}
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
		if err := f.set(d.fieldValue(sv, f), decTrim(raw), ctx); err != nil {
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
func (d *Decoder) fieldValue(sv reflect.Value, f *decField) reflect.Value {
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

func decTrim(raw []byte) []byte {
	if len(raw) > 0 && (decIsSpace(raw[0]) || decIsSpace(raw[len(raw)-1])) {
		return bytes.TrimSpace(raw)
	}
	return raw
}

func decIsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decIsValueType reports whether struct type t is decoded as one value
// rather than flattened into columns.
func decIsValueType(t reflect.Type) bool {
	if t == reflect.TypeFor[time.Time]() || decIsSQLNull(t) {
		return true
	}
	pt := reflect.PointerTo(t)
	return pt.Implements(reflect.TypeFor[sql.Scanner]()) || pt.Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

// decIsSQLNull reports whether t is one of database/sql's Null types
// (NullString, NullInt64, ..., NullTime, Null[T]): a value field followed by
// Valid bool.
func decIsSQLNull(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() == "database/sql" && strings.HasPrefix(t.Name(), "Null") &&
		t.NumField() == 2 && t.Field(1).Name == "Valid" && t.Field(1).Type.Kind() == reflect.Bool
}

// decSetterFor builds the setter for Go type t.
func decSetterFor(t reflect.Type) decSetter {
	switch {
	case t == reflect.TypeFor[json.RawMessage]():
		return decSetRawMessage
	case t.Kind() == reflect.Pointer:
		return decPtrSetter(t)
	case t == reflect.TypeFor[time.Time]():
		return decSetTime
	case t == reflect.TypeFor[time.Duration]():
		return decDurationSetter(t)
	case decIsSQLNull(t):
		return decNullSetter(t)
	}
	if t.Kind() != reflect.Interface {
		pt := reflect.PointerTo(t)
		scan := pt.Implements(reflect.TypeFor[sql.Scanner]())
		text := pt.Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
		if scan || text {
			return decCustomSetter(t, scan, text)
		}
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return decIntSetter(t)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return decUintSetter(t)
	case reflect.Float32, reflect.Float64:
		return decFloatSetter(t)
	case reflect.Bool:
		return decBoolSetter(t)
	case reflect.String:
		return decSetString
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.Uint8:
			return decSetBytes
		case reflect.String:
			return decStringsSetter(t)
		}
		return decJSONSetter(t)
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return decByteArraySetter(t)
		}
		return decJSONSetter(t)
	case reflect.Map, reflect.Struct, reflect.Interface:
		return decJSONSetter(t)
	}
	return func(_ reflect.Value, _ []byte, _ decCtx) error {
		return fmt.Errorf("a %s field cannot hold a row value; skip it with db:\"-\"", t)
	}
}

// ---- value classification and messages

// decShow renders a JSON value for an error message, shortened.
func decShow(raw []byte) string {
	const max = 64
	if len(raw) > max {
		return string(raw[:max]) + "..."
	}
	return string(raw)
}

func decKindName(raw []byte) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func decWrongKind(raw []byte, t reflect.Type) error {
	return fmt.Errorf("a JSON %s %s cannot be stored in %s", decKindName(raw), decShow(raw), t)
}

// decUnquote returns the contents of the JSON string raw, without copying
// when it has no escapes.
func decUnquote(raw []byte) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, fmt.Errorf("invalid JSON string %s", decShow(raw))
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return s, nil
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("invalid JSON string %s: %w", decShow(raw), err)
	}
	return []byte(out), nil
}

// decUnquoteString is decUnquote for a string result (one copy).
func decUnquoteString(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return string(s), nil
		}
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("invalid JSON string %s: %w", decShow(raw), err)
	}
	return out, nil
}

func decBase64(s []byte, state decBin) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	if err != nil {
		why := "the column is listed as binary"
		if state == decBinUnknown {
			why = "the envelope does not say which columns are binary, so []byte fields expect base64"
		}
		return nil, fmt.Errorf("value %q is not valid base64 (%s): %w", decShow(s), why, err)
	}
	return out[:n], nil
}

// ---- numbers

type decNumErr int

const (
	decNumOK       decNumErr = iota
	decNumSyntax             // not a number
	decNumFraction           // a number, but not an integer
	decNumRange              // an integer beyond 64 bits
)

// decParseInteger parses a plain decimal literal exactly: an optional '-',
// digits, and optionally '.' followed by digits that must all be zero.
// Exponents and non-zero fractions give decNumFraction when the text is a
// valid number otherwise.
func decParseInteger(b []byte) (neg bool, mag uint64, e decNumErr) {
	i := 0
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			e = decNumRange
			continue
		}
		if e == decNumOK {
			mag = mag*10 + d
		}
	}
	if i == start {
		return neg, 0, decNumSyntax
	}
	if i == len(b) {
		return neg, mag, e
	}
	// The rest must be a fraction and/or exponent of a valid number.
	if !decIsNumber(b) {
		return neg, 0, decNumSyntax
	}
	if b[i] == '.' {
		j := i + 1
		for ; j < len(b) && b[j] == '0'; j++ {
		}
		if j == len(b) { // "12.00": an exact integer
			return neg, mag, e
		}
	}
	return neg, 0, decNumFraction
}

// decIsNumber reports whether b is a JSON-style decimal number
// (-?digits(.digits)?([eE][+-]?digits)?), rejecting NaN, Inf, hex and the
// like that strconv would take.
func decIsNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() bool {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > s
	}
	if !digits() {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(b)
}

// decNumberText returns the text of a number held by raw: the literal of a
// JSON number or the contents of a JSON string (DECIMAL). ok is false for
// other kinds.
func decNumberText(raw []byte) (text []byte, ok bool, err error) {
	switch c := raw[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		return raw, true, nil
	case c == '"':
		s, err := decUnquote(raw)
		return s, true, err
	}
	return nil, false, nil
}

func decIntSetter(t reflect.Type) decSetter {
	bits := t.Bits()
	maxPos := uint64(1)<<(bits-1) - 1
	return func(v reflect.Value, raw []byte, _ decCtx) error {
		if raw[0] == 'n' {
			v.SetInt(0)
			return nil
		}
		text, ok, err := decNumberText(raw)
		if err != nil {
			return err
		}
		if !ok {
			return decWrongKind(raw, t)
		}
		neg, mag, e := decParseInteger(text)
		if e == decNumOK && ((neg && mag > maxPos+1) || (!neg && mag > maxPos)) {
			e = decNumRange
		}
		if e != decNumOK {
			return decIntError(e, raw, t)
		}
		if neg {
			v.SetInt(int64(-mag)) // two's complement: -(1<<63) stays exact
		} else {
			v.SetInt(int64(mag))
		}
		return nil
	}
}

func decUintSetter(t reflect.Type) decSetter {
	max := uint64(math.MaxUint64) >> (64 - t.Bits())
	return func(v reflect.Value, raw []byte, _ decCtx) error {
		if raw[0] == 'n' {
			v.SetUint(0)
			return nil
		}
		text, ok, err := decNumberText(raw)
		if err != nil {
			return err
		}
		if !ok {
			return decWrongKind(raw, t)
		}
		neg, mag, e := decParseInteger(text)
		if e == decNumOK && neg && mag != 0 {
			return fmt.Errorf("value %s is negative; %s is unsigned", decShow(raw), t)
		}
		if e == decNumOK && mag > max {
			e = decNumRange
		}
		if e != decNumOK {
			return decIntError(e, raw, t)
		}
		v.SetUint(mag)
		return nil
	}
}

func decIntError(e decNumErr, raw []byte, t reflect.Type) error {
	switch e {
	case decNumRange:
		return fmt.Errorf("value %s overflows %s", decShow(raw), t)
	case decNumFraction:
		return fmt.Errorf("value %s is not a whole number; %s holds integers only", decShow(raw), t)
	}
	return fmt.Errorf("value %s is not a number", decShow(raw))
}

func decFloatSetter(t reflect.Type) decSetter {
	bits := t.Bits()
	return func(v reflect.Value, raw []byte, _ decCtx) error {
		if raw[0] == 'n' {
			v.SetFloat(0)
			return nil
		}
		text, ok, err := decNumberText(raw)
		if err != nil {
			return err
		}
		if !ok {
			return decWrongKind(raw, t)
		}
		if !decIsNumber(text) {
			return fmt.Errorf("value %s is not a number", decShow(raw))
		}
		f, err := strconv.ParseFloat(string(text), bits)
		if err != nil {
			return fmt.Errorf("value %s overflows %s", decShow(raw), t)
		}
		v.SetFloat(f)
		return nil
	}
}

func decBoolSetter(t reflect.Type) decSetter {
	return func(v reflect.Value, raw []byte, _ decCtx) error {
		switch {
		case raw[0] == 'n':
			v.SetBool(false)
		case string(raw) == "true" || string(raw) == "1":
			v.SetBool(true)
		case string(raw) == "false" || string(raw) == "0":
			v.SetBool(false)
		case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
			return fmt.Errorf("value %s is not a boolean; %s takes 0 or 1 (TINYINT(1), BIT(1))", decShow(raw), t)
		default:
			return decWrongKind(raw, t)
		}
		return nil
	}
}

// ---- strings and bytes

// decSetString: a JSON string as is (base64-decoded for a binary column), a
// number or boolean as its literal, a SET (an array of strings) joined with
// ",", and any other array or object as its JSON text.
func decSetString(v reflect.Value, raw []byte, c decCtx) error {
	switch raw[0] {
	case 'n':
		v.SetString("")
	case '"':
		if c.binaryState() == decBinYes {
			s, err := decUnquote(raw)
			if err != nil {
				return err
			}
			b, err := decBase64(s, decBinYes)
			if err != nil {
				return err
			}
			v.SetString(string(b))
			return nil
		}
		s, err := decUnquoteString(raw)
		if err != nil {
			return err
		}
		v.SetString(s)
	case '[':
		var set []string
		if err := json.Unmarshal(raw, &set); err == nil {
			v.SetString(strings.Join(set, ","))
			return nil
		}
		v.SetString(string(raw))
	default: // numbers, booleans, objects
		v.SetString(string(raw))
	}
	return nil
}

// decSetBytes: base64 for binary columns (and when binary columns are
// unknown), UTF-8 bytes of a text column, the JSON text of an object or
// array, the literal of a number or boolean.
func decSetBytes(v reflect.Value, raw []byte, c decCtx) error {
	b, err := decBytesOf(raw, c)
	if err != nil {
		return err
	}
	v.SetBytes(b)
	return nil
}

func decBytesOf(raw []byte, c decCtx) ([]byte, error) {
	switch raw[0] {
	case 'n':
		return nil, nil
	case '"':
		s, err := decUnquote(raw)
		if err != nil {
			return nil, err
		}
		if st := c.binaryState(); st != decBinNo {
			return decBase64(s, st)
		}
		return append([]byte{}, s...), nil
	}
	return append([]byte{}, raw...), nil
}

func decByteArraySetter(t reflect.Type) decSetter {
	return func(v reflect.Value, raw []byte, c decCtx) error {
		if raw[0] == 'n' {
			v.SetZero()
			return nil
		}
		if raw[0] != '"' {
			return decWrongKind(raw, t)
		}
		b, err := decBytesOf(raw, c)
		if err != nil {
			return err
		}
		if len(b) != t.Len() {
			return fmt.Errorf("value has %d bytes; %s holds exactly %d", len(b), t, t.Len())
		}
		reflect.Copy(v, reflect.ValueOf(b))
		return nil
	}
}

func decSetRawMessage(v reflect.Value, raw []byte, _ decCtx) error {
	if raw[0] == 'n' {
		v.SetBytes(nil)
		return nil
	}
	v.SetBytes(append([]byte{}, raw...))
	return nil
}

// decStringsSetter: a SET (JSON array of strings) or a comma-separated
// string ("" is an empty, non-nil slice).
func decStringsSetter(t reflect.Type) decSetter {
	return func(v reflect.Value, raw []byte, _ decCtx) error {
		switch raw[0] {
		case 'n':
			v.SetZero()
		case '[':
			p := reflect.New(t)
			if err := json.Unmarshal(raw, p.Interface()); err != nil {
				return fmt.Errorf("value %s is not an array of strings: %w", decShow(raw), err)
			}
			v.Set(p.Elem())
		case '"':
			s, err := decUnquoteString(raw)
			if err != nil {
				return err
			}
			if s == "" {
				v.Set(reflect.MakeSlice(t, 0, 0))
				return nil
			}
			parts := strings.Split(s, ",")
			out := reflect.MakeSlice(t, len(parts), len(parts))
			for i, p := range parts {
				out.Index(i).SetString(p)
			}
			v.Set(out)
		default:
			return decWrongKind(raw, t)
		}
		return nil
	}
}

// decJSONSetter: json.Unmarshal of the raw value into a fresh value (JSON
// columns into maps, slices, structs and interfaces).
func decJSONSetter(t reflect.Type) decSetter {
	return func(v reflect.Value, raw []byte, _ decCtx) error {
		if raw[0] == 'n' {
			v.SetZero()
			return nil
		}
		p := reflect.New(t)
		if err := json.Unmarshal(raw, p.Interface()); err != nil {
			return fmt.Errorf("value %s does not unmarshal into %s: %w", decShow(raw), t, err)
		}
		v.Set(p.Elem())
		return nil
	}
}

// ---- pointers, sql.Null*, custom types

func decPtrSetter(t reflect.Type) decSetter {
	elem := t.Elem()
	if elem == reflect.TypeFor[time.Time]() {
		// A zero date is no instant: nil, like NULL.
		return func(v reflect.Value, raw []byte, c decCtx) error {
			if raw[0] == 'n' {
				v.SetZero()
				return nil
			}
			tm, zero, err := decTimeOf(raw, c)
			if err != nil {
				return err
			}
			if zero {
				v.SetZero()
				return nil
			}
			v.Set(reflect.ValueOf(&tm))
			return nil
		}
	}
	inner := decSetterFor(elem)
	return func(v reflect.Value, raw []byte, c decCtx) error {
		if raw[0] == 'n' {
			v.SetZero()
			return nil
		}
		p := reflect.New(elem)
		if err := inner(p.Elem(), raw, c); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
}

func decNullSetter(t reflect.Type) decSetter {
	if t.Field(0).Type == reflect.TypeFor[time.Time]() {
		// A zero date is Valid=false, like NULL.
		return func(v reflect.Value, raw []byte, c decCtx) error {
			if raw[0] == 'n' {
				v.SetZero()
				return nil
			}
			tm, zero, err := decTimeOf(raw, c)
			if err != nil {
				return err
			}
			if zero {
				v.SetZero()
				return nil
			}
			*(v.Field(0).Addr().Interface().(*time.Time)) = tm
			v.Field(1).SetBool(true)
			return nil
		}
	}
	inner := decSetterFor(t.Field(0).Type)
	return func(v reflect.Value, raw []byte, c decCtx) error {
		if raw[0] == 'n' {
			v.SetZero()
			return nil
		}
		if err := inner(v.Field(0), raw, c); err != nil {
			return err
		}
		v.Field(1).SetBool(true)
		return nil
	}
}

// decCustomSetter handles types whose pointer implements sql.Scanner and/or
// encoding.TextUnmarshaler. The value is built in a fresh zero value and
// stored only on success.
//   - null: Scan(nil) for a Scanner (the zero value when Scan refuses nil, as
//     decimal.Decimal does); the zero value otherwise.
//   - a string of a binary column: the decoded bytes, to Scan([]byte) or else
//     UnmarshalText.
//   - a string: UnmarshalText(contents) when available (exact for
//     decimal.Decimal); else Scan(string), and when that fails and the string
//     is a DATE/DATETIME/TIMESTAMP, Scan(time.Time) (Scan(nil) for a zero
//     date), which serves gorm.DeletedAt and other NullTime-like types.
//   - a number: UnmarshalText(literal) when available; else Scan with int64,
//     uint64 (beyond int64) or float64 (fractions, exponents).
//   - true/false: UnmarshalText(literal) when available, else Scan(bool).
//   - an object or array: Scan([]byte(JSON text)) for a Scanner, else
//     json.Unmarshal.
func decCustomSetter(t reflect.Type, scan, text bool) decSetter {
	return func(v reflect.Value, raw []byte, c decCtx) error {
		p := reflect.New(t)
		pi := p.Interface()
		var err error
		switch c0 := raw[0]; {
		case c0 == 'n':
			if scan {
				if pi.(sql.Scanner).Scan(nil) != nil {
					p.Elem().SetZero()
				}
			}
		case c0 == '"':
			var s []byte
			if s, err = decUnquote(raw); err != nil {
				return err
			}
			if c.binaryState() == decBinYes {
				var b []byte
				if b, err = decBase64(s, decBinYes); err != nil {
					return err
				}
				if scan {
					err = pi.(sql.Scanner).Scan(b)
				} else {
					err = pi.(encoding.TextUnmarshaler).UnmarshalText(b)
				}
				break
			}
			if text {
				err = pi.(encoding.TextUnmarshaler).UnmarshalText(s)
				break
			}
			if err = pi.(sql.Scanner).Scan(string(s)); err != nil {
				if tm, zero, perr := decParseTime(s, c.loc); perr == nil {
					p.Elem().SetZero()
					var dv any // nil for a zero date
					if !zero {
						dv = tm
					}
					if pi.(sql.Scanner).Scan(dv) == nil {
						err = nil
					}
				}
			}
		case c0 == '{' || c0 == '[':
			if scan {
				err = pi.(sql.Scanner).Scan(append([]byte{}, raw...))
			} else {
				err = json.Unmarshal(raw, pi)
			}
		case c0 == 't' || c0 == 'f':
			if text {
				err = pi.(encoding.TextUnmarshaler).UnmarshalText(raw)
			} else {
				err = pi.(sql.Scanner).Scan(c0 == 't')
			}
		default: // a number
			if text {
				err = pi.(encoding.TextUnmarshaler).UnmarshalText(raw)
			} else {
				var dv any
				if dv, err = decDriverNumber(raw); err == nil {
					err = pi.(sql.Scanner).Scan(dv)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("value %s does not fit %s: %w", decShow(raw), t, err)
		}
		v.Set(p.Elem())
		return nil
	}
}

// decDriverNumber converts a JSON number to the driver value a Scanner
// expects: int64, uint64 beyond int64's range, or float64.
func decDriverNumber(raw []byte) (any, error) {
	neg, mag, e := decParseInteger(raw)
	switch {
	case e == decNumOK && !neg && mag <= math.MaxInt64:
		return int64(mag), nil
	case e == decNumOK && !neg:
		return mag, nil
	case e == decNumOK && mag <= 1<<63:
		return int64(-mag), nil
	}
	if !decIsNumber(raw) {
		return nil, fmt.Errorf("value %s is not a number", decShow(raw))
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return nil, fmt.Errorf("value %s overflows float64", decShow(raw))
	}
	return f, nil
}

// ---- time

func decSetTime(v reflect.Value, raw []byte, c decCtx) error {
	if raw[0] == 'n' {
		v.SetZero()
		return nil
	}
	tm, _, err := decTimeOf(raw, c) // a zero date is time.Time{}
	if err != nil {
		return err
	}
	*(v.Addr().Interface().(*time.Time)) = tm
	return nil
}

func decTimeOf(raw []byte, c decCtx) (time.Time, bool, error) {
	if raw[0] != '"' {
		return time.Time{}, false, decWrongKind(raw, reflect.TypeFor[time.Time]())
	}
	s, err := decUnquote(raw)
	if err != nil {
		return time.Time{}, false, err
	}
	return decParseTime(s, c.loc)
}

// decParseTime parses the envelope's date forms: "2006-01-02" (DATE,
// midnight in loc), "2006-01-02T15:04:05[.fraction]" (DATETIME, wall clock in
// loc), the same with a trailing "Z" (TIMESTAMP, that instant, returned in
// loc). A space is accepted instead of the "T". A date with a zero month or
// day (MySQL's zero dates such as "0000-00-00 00:00:00.000000") reports
// zero=true and time.Time{}.
func decParseTime(s []byte, loc *time.Location) (tm time.Time, zero bool, err error) {
	bad := func(why string) (time.Time, bool, error) {
		return time.Time{}, false, fmt.Errorf("value %q is not a DATE, DATETIME or TIMESTAMP "+
			"(want 2006-01-02, 2006-01-02T15:04:05[.ffffff] or 2006-01-02T15:04:05[.ffffff]Z): %s", decShow(s), why)
	}
	num := func(b []byte) (int, bool) {
		n := 0
		for _, ch := range b {
			if ch < '0' || ch > '9' {
				return 0, false
			}
			n = n*10 + int(ch-'0')
		}
		return n, true
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return bad("bad date")
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 {
		return bad("bad date")
	}
	var hour, minute, sec, nsec int
	utc := false
	rest := s[10:]
	if len(rest) > 0 {
		if rest[0] != 'T' && rest[0] != ' ' {
			return bad("bad date/time separator")
		}
		rest = rest[1:]
		if len(rest) < 8 || rest[2] != ':' || rest[5] != ':' {
			return bad("bad time of day")
		}
		var ok4, ok5, ok6 bool
		hour, ok4 = num(rest[0:2])
		minute, ok5 = num(rest[3:5])
		sec, ok6 = num(rest[6:8])
		if !ok4 || !ok5 || !ok6 {
			return bad("bad time of day")
		}
		rest = rest[8:]
		if len(rest) > 0 && rest[0] == '.' {
			j := 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			digits := j - 1
			if digits == 0 || digits > 9 {
				return bad("bad fraction of a second")
			}
			nsec, _ = num(rest[1:j])
			for k := digits; k < 9; k++ {
				nsec *= 10
			}
			rest = rest[j:]
		}
		if len(rest) > 0 && rest[0] == 'Z' {
			utc = true
			rest = rest[1:]
		}
		if len(rest) != 0 {
			return bad("trailing characters")
		}
		if hour > 23 || minute > 59 || sec > 59 {
			return bad("time of day out of range")
		}
	}
	if month == 0 || day == 0 {
		return time.Time{}, true, nil
	}
	if month > 12 || day > decDaysIn(year, month) {
		return bad("no such day")
	}
	if utc {
		return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC).In(loc), false, nil
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), false, nil
}

func decDaysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// decDurationSetter: a TIME string ("-838:59:59", "12:34:56.123456"; hours may
// exceed 24) as a Duration; a JSON number as nanoseconds, like any int64.
func decDurationSetter(t reflect.Type) decSetter {
	asInt := decIntSetter(t)
	return func(v reflect.Value, raw []byte, c decCtx) error {
		switch raw[0] {
		case 'n':
			v.SetInt(0)
			return nil
		case '"':
			s, err := decUnquote(raw)
			if err != nil {
				return err
			}
			d, err := decParseTimeOfDay(s)
			if err != nil {
				return err
			}
			v.SetInt(int64(d))
			return nil
		}
		return asInt(v, raw, c)
	}
}

// decParseTimeOfDay parses a MySQL TIME value: [-]H+:MM:SS[.fraction].
func decParseTimeOfDay(s []byte) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("value %q is not a TIME (want [-]HHH:MM:SS[.ffffff])", decShow(s))
	}
	i := 0
	neg := false
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	var h int64
	start := i
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		h = h*10 + int64(s[i]-'0')
		if h > 1_000_000 {
			return bad()
		}
	}
	if i == start || len(s)-i < 6 || s[i] != ':' || s[i+3] != ':' {
		return bad()
	}
	two := func(b []byte) (int64, bool) {
		if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
			return 0, false
		}
		return int64(b[0]-'0')*10 + int64(b[1]-'0'), true
	}
	m, ok1 := two(s[i+1 : i+3])
	sec, ok2 := two(s[i+4 : i+6])
	if !ok1 || !ok2 || m > 59 || sec > 59 {
		return bad()
	}
	i += 6
	var ns int64
	if i < len(s) {
		if s[i] != '.' {
			return bad()
		}
		digits := 0
		for i++; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' || digits == 9 {
				return bad()
			}
			ns = ns*10 + int64(s[i]-'0')
			digits++
		}
		if digits == 0 {
			return bad()
		}
		for ; digits < 9; digits++ {
			ns *= 10
		}
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(ns)
	if neg {
		d = -d
	}
	return d, nil
}
