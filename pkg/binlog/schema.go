package binlog

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// valueKind says how a column's decoded value becomes JSON (the type contract
// of docs/envelope.md).
type valueKind int

const (
	kindNumber    valueKind = iota // integers, floats, YEAR: JSON number
	kindBit                        // BIT: unsigned JSON number
	kindDecimal                    // DECIMAL: string of exact digits
	kindText                       // CHAR/VARCHAR/TEXT: UTF-8 string
	kindBytes                      // BINARY/VARBINARY/BLOB/GEOMETRY: base64 string
	kindJSON                       // JSON: the document itself
	kindDate                       // DATE, TIME: string as MySQL writes it
	kindDatetime                   // DATETIME: wall clock, "T" separator, no zone
	kindTimestamp                  // TIMESTAMP: UTC instant with "Z"
	kindEnum                       // ENUM: the value's name
	kindSet                        // SET: array of names
)

// column is what the encoder needs to know about one column.
type column struct {
	name     string
	key      []byte // `"name":` pre-encoded
	kind     valueKind
	realType byte
	unsigned bool
	charset  string   // text columns: the column's character set
	values   []string // ENUM and SET member names, in definition order
	// layout formats DATETIME and TIMESTAMP values decoded as time.Time,
	// with the column's fractional digits.
	layout timeLayout
	// fsp is the fractional second digits of a temporal column read by a
	// snapshot (information_schema's DATETIME_PRECISION).
	fsp int
	// padTo is a BINARY(n) column's n: the binlog drops a value's trailing
	// zero bytes, which the column holds (and a SELECT returns).
	padTo int
}

// table is the decoding plan of one table map: the columns in binlog order.
type table struct {
	db, name string
	columns  []column
	pk       []string
	// head is the pre-encoded `"db":..,"table":..,` fragment and pkJSON the
	// `"pk":[..]` fragment (plus `,"binary":[..]` naming the base64-encoded
	// columns, when there are any) of every envelope of this table.
	head   []byte
	pkJSON []byte
	// avgEnvelope is a running average of this table's envelope size.
	avgEnvelope int
	// prev points at the id of the table's last change in this pass.
	prev *string
	// unpublishable, when set, says why the table's rows cannot be
	// published; the plan has no columns then.
	unpublishable string
}

// envelopeSize estimates one envelope's size: the running average once
// known, else a guess from the header and the row's binlog size.
func (t *table) envelopeSize(guess int) int {
	if t.avgEnvelope > 0 {
		return t.avgEnvelope + t.avgEnvelope/8
	}
	return 160 + len(t.head) + len(t.pkJSON) + 2*guess
}

// observe folds an event's envelope bytes for n rows into the average.
func (t *table) observe(bytes, n int) {
	if n == 0 {
		return
	}
	avg := bytes / n
	if t.avgEnvelope == 0 {
		t.avgEnvelope = avg
		return
	}
	t.avgEnvelope = (3*t.avgEnvelope + avg) / 4
}

// infoColumn is one row of information_schema.COLUMNS.
type infoColumn struct {
	name       string
	dataType   string // "int", "varchar", "longtext", ...
	columnType string // "int(10) unsigned", "enum('a','b')", ...
	charset    string // "" for non-character columns and binary strings
	json       bool   // a JSON column (MySQL's type or MariaDB's json_valid check)
	precision  int    // fractional second digits of TIME, DATETIME, TIMESTAMP
	nullable   bool
}

// infoTable is what information_schema says about a table now.
type infoTable struct {
	columns []infoColumn
	pk      []string
}

func (it *infoTable) column(name string) *infoColumn {
	for i := range it.columns {
		if strings.EqualFold(it.columns[i].name, name) {
			return &it.columns[i]
		}
	}
	return nil
}

// SchemaError reports a table whose rows dbsync cannot decode faithfully. It
// is fatal: the producer stops rather than publish misaligned values.
type SchemaError struct {
	DB, Table string
	Reason    string
	// Unpublishable marks the problems Tables.OnUnpublishable may skip:
	// the name cannot be a broker subject, or a column's character set
	// cannot be converted.
	Unpublishable bool
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("table %s.%s: %s", e.DB, e.Table, e.Reason)
}

// buildTable combines a table map event with information_schema into a
// decoding plan. Column names, signedness, character sets and ENUM/SET values
// come from the binlog's own metadata when the server logs them
// (binlog_row_metadata=FULL), because they describe the row as it was
// written; information_schema (the table as it is now) fills in what the
// binlog lacks, and only when it still matches the binlog's column layout.
func buildTable(tm *replication.TableMapEvent, info *infoTable, collations map[uint64]string) (*table, error) {
	db, name := string(tm.Schema), string(tm.Table)
	n := int(tm.ColumnCount)
	names := tm.ColumnNameString()
	fromBinlog := len(names) == n
	if strings.ContainsAny(db+name, ". *>\t\r\n") {
		return nil, &SchemaError{DB: db, Table: name, Unpublishable: true, Reason: fmt.Sprintf("the name contains a character that cannot be part of a broker subject "+
			"(dot, space, '*' or '>'); exclude the table (Tables.Exclude: [%q]; a name holding a dot goes in backquotes) or rename it", TablePattern(db, name))}
	}
	if !fromBinlog {
		if info == nil {
			return nil, &SchemaError{DB: db, Table: name, Reason: "the table no longer exists and the server does not log column names; " +
				"set binlog_row_metadata=FULL on the server (SET GLOBAL binlog_row_metadata=FULL) so rows carry their own column names"}
		}
		if len(info.columns) != n {
			have := len(info.columns)
			return nil, &SchemaError{DB: db, Table: name, Reason: fmt.Sprintf(
				"the binlog row has %d columns but the table now has %d, and the server does not log column names; "+
					"the table changed after these rows were written. Set binlog_row_metadata=FULL on the server "+
					"(SET GLOBAL binlog_row_metadata=FULL) so rows carry their own column names", n, have)}
		}
		names = make([]string, n)
		for i := range names {
			names[i] = info.columns[i].name
		}
	}
	unsigned := tm.UnsignedMap()
	charsets := tm.CollationMap()
	enumSetCharsets := tm.EnumSetCollationMap()
	enums := tm.EnumStrValueMap()
	sets := tm.SetStrValueMap()

	t := &table{db: db, name: name, columns: make([]column, n)}
	for i := 0; i < n; i++ {
		c := &t.columns[i]
		c.name = names[i]
		c.key = append(appendJSONString(nil, c.name), ':')
		c.realType = realType(tm, i)
		var ic *infoColumn
		if info != nil {
			ic = info.column(c.name)
			if !fromBinlog && ic != nil && !typeMatches(c.realType, ic.dataType) {
				return nil, &SchemaError{DB: db, Table: name, Reason: fmt.Sprintf(
					"column %d %q is %s in the binlog but %s in the table now; the table changed after these rows were "+
						"written. Set binlog_row_metadata=FULL on the server so rows carry their own column metadata",
					i+1, c.name, typeName(c.realType), ic.columnType)}
			}
		}
		if u, ok := unsigned[i]; ok {
			c.unsigned = u
		} else if ic != nil {
			c.unsigned = strings.Contains(ic.columnType, "unsigned")
		}
		charset := ""
		if id, ok := charsets[i]; ok {
			charset = collations[id]
		} else if id, ok := enumSetCharsets[i]; ok {
			charset = collations[id]
		} else if ic != nil {
			charset = ic.charset
		}
		c.charset = charset
		if err := checkCharset(charset); err != nil {
			return nil, &SchemaError{DB: db, Table: name, Unpublishable: true, Reason: fmt.Sprintf("column %q: %v", c.name, err)}
		}
		if v, ok := enums[i]; ok {
			c.values = v
		} else if v, ok := sets[i]; ok {
			c.values = v
		} else if ic != nil && (c.realType == mysql.MYSQL_TYPE_ENUM || c.realType == mysql.MYSQL_TYPE_SET) {
			c.values = parseEnumValues(ic.columnType)
		}
		isJSON := ic != nil && ic.json
		kind, err := kindOf(c.realType, charset, isJSON, charsetKnown(charsets, enumSetCharsets, i, ic))
		if err != nil {
			return nil, &SchemaError{DB: db, Table: name, Reason: fmt.Sprintf("column %q: %v", c.name, err)}
		}
		c.kind = kind
		if kind == kindBytes && c.realType == mysql.MYSQL_TYPE_STRING {
			c.padTo = fixedStringLength(tm.ColumnMeta[i])
		}
		if kind == kindDatetime || kind == kindTimestamp {
			c.layout = newTimeLayout(c.realType, tm.ColumnMeta[i], kind == kindTimestamp)
		}
		if (kind == kindEnum || kind == kindSet) && c.values == nil {
			return nil, &SchemaError{DB: db, Table: name, Reason: fmt.Sprintf(
				"column %q: the %s member names are neither in the binlog nor in information_schema; "+
					"set binlog_row_metadata=FULL on the server", c.name, typeName(c.realType))}
		}
	}
	switch {
	case len(tm.PrimaryKey) > 0:
		for _, idx := range tm.PrimaryKey {
			if int(idx) < n {
				t.pk = append(t.pk, t.columns[idx].name)
			}
		}
	case info != nil:
		t.pk = info.pk
	}
	t.prepareFragments()
	return t, nil
}

// prepareFragments pre-encodes the envelope fragments every change of the
// table shares: head and pkJSON (with the "binary" column list).
func (t *table) prepareFragments() {
	t.head = appendJSONString(append(appendJSONString([]byte(`"db":`), t.db), `,"table":`...), t.name)
	t.pkJSON = append([]byte(`"pk":[`), ']')
	if len(t.pk) > 0 {
		t.pkJSON = []byte(`"pk":[`)
		for i, k := range t.pk {
			if i > 0 {
				t.pkJSON = append(t.pkJSON, ',')
			}
			t.pkJSON = appendJSONString(t.pkJSON, k)
		}
		t.pkJSON = append(t.pkJSON, ']')
	}
	first := true
	for _, c := range t.columns {
		if c.kind != kindBytes {
			continue
		}
		if first {
			t.pkJSON = append(t.pkJSON, `,"binary":[`...)
		} else {
			t.pkJSON = append(t.pkJSON, ',')
		}
		first = false
		t.pkJSON = appendJSONString(t.pkJSON, c.name)
	}
	if !first {
		t.pkJSON = append(t.pkJSON, ']')
	}
}

// TablePattern is the Tables.Include/Exclude pattern naming exactly
// db.table: a part holding a dot or a glob character is put in backquotes
// (a backquote in it doubled).
func TablePattern(db, table string) string {
	quote := func(s string) string {
		if !strings.ContainsAny(s, ".*?[]\\`") {
			return s
		}
		return "`" + strings.ReplaceAll(s, "`", "``") + "`"
	}
	return quote(db) + "." + quote(table)
}

// checkCharset accepts the character sets dbsync converts to UTF-8 exactly.
func checkCharset(cs string) error {
	switch cs {
	case "", "binary", "utf8", "utf8mb3", "utf8mb4", "ascii", "latin1":
		return nil
	}
	return fmt.Errorf("character set %s is not supported (dbsync converts utf8, utf8mb4, ascii and latin1 exactly): "+
		"convert the column to utf8mb4, or exclude the table with Tables.Exclude", cs)
}

// timeLayout is how a DATETIME or TIMESTAMP decoded as time.Time is
// written the way the type contract wants it: "2006-01-02T15:04:05", then
// the column's fractional second digits (zeros kept), then "Z" for a
// TIMESTAMP (an instant, in UTC).
type timeLayout struct {
	frac int // 0..6
	utc  bool
}

// newTimeLayout returns the layout of a column of real type t with
// metadata meta (the fractional digits of the "2" types; the old types
// have none).
func newTimeLayout(t byte, meta uint16, utc bool) timeLayout {
	l := timeLayout{utc: utc}
	if (t == mysql.MYSQL_TYPE_DATETIME2 || t == mysql.MYSQL_TYPE_TIMESTAMP2) && meta > 0 && meta <= 6 {
		l.frac = int(meta)
	}
	return l
}

// appendTime writes t (in UTC) in the layout: what t.UTC().AppendFormat
// writes with the equivalent Go layout, without parsing that layout for
// every value. Years outside 0..9999 (MySQL has none) are written as
// AppendFormat writes them.
func (l timeLayout) appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, l.goLayout())
	}
	hour, minute, sec := t.Clock()
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	b = appendTwoDigits(b, int(month), '-')
	b = appendTwoDigits(b, day, 'T')
	b = appendTwoDigits(b, hour, ':')
	b = appendTwoDigits(b, minute, ':')
	b = append(b, byte('0'+sec/10), byte('0'+sec%10))
	if l.frac > 0 {
		// Truncated, not rounded, as package time writes fractions.
		var digits [9]byte
		ns := t.Nanosecond()
		for i := len(digits) - 1; i >= 0; i-- {
			digits[i] = byte('0' + ns%10)
			ns /= 10
		}
		b = append(b, '.')
		b = append(b, digits[:l.frac]...)
	}
	if l.utc {
		b = append(b, 'Z')
	}
	return b
}

// appendTwoDigits writes v (0..99) as two digits and then sep.
func appendTwoDigits(b []byte, v int, sep byte) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10), sep)
}

// goLayout is the equivalent layout of package time.
func (l timeLayout) goLayout() string {
	layout := "2006-01-02T15:04:05"
	if l.frac > 0 {
		layout += "." + "000000"[:l.frac]
	}
	if l.utc {
		layout += "Z"
	}
	return layout
}

func charsetKnown(a, b map[int]uint64, i int, ic *infoColumn) bool {
	if _, ok := a[i]; ok {
		return true
	}
	if _, ok := b[i]; ok {
		return true
	}
	return ic != nil
}

// fixedStringLength is the byte length of a CHAR/BINARY column from its
// table-map metadata (the real type and the length packed together).
func fixedStringLength(meta uint16) int {
	if meta < 256 {
		return int(meta)
	}
	b0, b1 := byte(meta>>8), byte(meta)
	if b0&0x30 != 0x30 {
		return int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
	}
	return int(b1)
}

// realType resolves MYSQL_TYPE_STRING's packed real type (ENUM and SET are
// logged as STRING with the real type in the metadata).
func realType(tm *replication.TableMapEvent, i int) byte {
	t := tm.ColumnType[i]
	if t == mysql.MYSQL_TYPE_STRING {
		meta := tm.ColumnMeta[i]
		if meta >= 256 {
			b0 := byte(meta >> 8)
			if b0&0x30 != 0x30 {
				return b0 | 0x30
			}
			return b0
		}
	}
	return t
}

// kindOf maps a binlog column type to its JSON kind. charset is the column's
// character set name ("binary" or "" for byte strings).
func kindOf(t byte, charset string, isJSON, charsetKnown bool) (valueKind, error) {
	switch t {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG,
		mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_FLOAT, mysql.MYSQL_TYPE_DOUBLE, mysql.MYSQL_TYPE_YEAR:
		return kindNumber, nil
	case mysql.MYSQL_TYPE_BIT:
		return kindBit, nil
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		return kindDecimal, nil
	case mysql.MYSQL_TYPE_JSON:
		return kindJSON, nil
	case mysql.MYSQL_TYPE_GEOMETRY:
		return kindBytes, nil
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE, mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return kindDate, nil
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		return kindDatetime, nil
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return kindTimestamp, nil
	case mysql.MYSQL_TYPE_ENUM:
		return kindEnum, nil
	case mysql.MYSQL_TYPE_SET:
		return kindSet, nil
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_STRING,
		mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
		if !charsetKnown {
			return 0, fmt.Errorf("cannot tell text from binary: the character set is neither in the binlog nor in information_schema")
		}
		if charset == "" || charset == "binary" {
			return kindBytes, nil
		}
		if isJSON {
			return kindJSON, nil
		}
		return kindText, nil
	}
	return 0, fmt.Errorf("binlog column type %d is not supported by dbsync", t)
}

// describeType names binlog column type t and lists the
// information_schema DATA_TYPE values that produce it (nil: any).
func describeType(t byte) (name string, dataTypes []string) {
	switch t {
	case mysql.MYSQL_TYPE_TINY:
		return "TINYINT", []string{"tinyint", "bool", "boolean"}
	case mysql.MYSQL_TYPE_SHORT:
		return "SMALLINT", []string{"smallint"}
	case mysql.MYSQL_TYPE_INT24:
		return "MEDIUMINT", []string{"mediumint"}
	case mysql.MYSQL_TYPE_LONG:
		return "INT", []string{"int", "integer"}
	case mysql.MYSQL_TYPE_LONGLONG:
		return "BIGINT", []string{"bigint"}
	case mysql.MYSQL_TYPE_FLOAT:
		return "FLOAT", []string{"float"}
	case mysql.MYSQL_TYPE_DOUBLE:
		return "DOUBLE", []string{"double", "real"}
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		return "DECIMAL", []string{"decimal", "numeric"}
	case mysql.MYSQL_TYPE_YEAR:
		return "YEAR", []string{"year"}
	case mysql.MYSQL_TYPE_BIT:
		return "BIT", []string{"bit"}
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return "DATE", []string{"date"}
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return "TIME", []string{"time"}
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		return "DATETIME", []string{"datetime"}
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return "TIMESTAMP", []string{"timestamp"}
	case mysql.MYSQL_TYPE_ENUM:
		return "ENUM", []string{"enum"}
	case mysql.MYSQL_TYPE_SET:
		return "SET", []string{"set"}
	case mysql.MYSQL_TYPE_JSON:
		return "JSON", []string{"json"}
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
		return "VARCHAR/VARBINARY", []string{"varchar", "varbinary"}
	case mysql.MYSQL_TYPE_STRING:
		return "CHAR/BINARY", []string{"char", "binary"}
	case mysql.MYSQL_TYPE_BLOB:
		return "BLOB/TEXT", []string{"tinyblob", "blob", "mediumblob", "longblob",
			"tinytext", "text", "mediumtext", "longtext", "json"}
	case mysql.MYSQL_TYPE_GEOMETRY:
		return "GEOMETRY", nil // geometry, point, polygon, ...
	}
	return fmt.Sprintf("type %d", t), []string{}
}

// typeMatches reports whether information_schema's DATA_TYPE can produce
// binlog column type t; a mismatch means the table changed since the event.
func typeMatches(t byte, dataType string) bool {
	_, allowed := describeType(t)
	return allowed == nil || slices.Contains(allowed, strings.ToLower(dataType))
}

func typeName(t byte) string {
	name, _ := describeType(t)
	return name
}

// parseEnumValues extracts the member names of "enum('a','b')" or
// "set('x','y')", undoing SQL quote doubling.
func parseEnumValues(columnType string) []string {
	open := strings.IndexByte(columnType, '(')
	end := strings.LastIndexByte(columnType, ')')
	if open < 0 || end <= open {
		return nil
	}
	s := columnType[open+1 : end]
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '\'' {
			continue
		}
		var b strings.Builder
		for i++; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				break
			}
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		out = append(out, b.String())
	}
	if out == nil {
		out = []string{}
	}
	return out
}
