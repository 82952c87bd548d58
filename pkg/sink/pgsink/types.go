package pgsink

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dbsync/dbsync/pkg/sink"
)

// kind is how a column's value travels: its JSON form in the envelope and
// its PostgreSQL value.
type kind int

const (
	kindInt       kind = iota // integers, YEAR, BIT: JSON integer
	kindFloat32               // FLOAT: JSON number
	kindFloat64               // DOUBLE: JSON number
	kindDecimal               // DECIMAL: JSON string of digits
	kindText                  // CHAR, VARCHAR, TEXT family, ENUM: JSON string
	kindSet                   // SET: JSON array of strings
	kindBytes                 // BINARY, VARBINARY, BLOB family, GEOMETRY: base64 JSON string
	kindJSON                  // JSON: the JSON value
	kindDate                  // DATE: "2026-11-21", zero "0000-00-00"
	kindTime                  // TIME: "-838:59:59", "12:34:56.123456"
	kindDatetime              // DATETIME: "2026-11-21T12:34:56.123456"
	kindTimestamp             // TIMESTAMP: "2026-11-21T04:34:56.123456Z"
)

// mapping is the PostgreSQL column a source column becomes.
type mapping struct {
	kind kind
	// ddl is the type as CREATE TABLE writes it ("numeric(20)"), format
	// as PostgreSQL's format_type shows it ("numeric(20,0)").
	ddl, format string
	// source describes the source type for messages ("bigint unsigned").
	source string
	// fsp is the fractional second digits of a temporal column.
	fsp int
	// minDigits is how many integer digits an integer column needs
	// (kindInt): a numeric target must have room for them.
	minDigits int
}

// intTypes are PostgreSQL's integer types, narrowest first, with the digits
// each holds.
var intTypes = []struct {
	name   string
	digits int
}{{"smallint", 4}, {"integer", 9}, {"bigint", 18}}

// intMapping is the smallest PostgreSQL integer type holding digits
// decimal digits (numeric(20) beyond bigint).
func intMapping(source string, digits int) mapping {
	for _, it := range intTypes {
		if digits <= it.digits {
			return mapping{kind: kindInt, ddl: it.name, format: it.name, source: source, minDigits: digits}
		}
	}
	return mapping{kind: kindInt, ddl: "numeric(20)", format: "numeric(20,0)", source: source, minDigits: 20}
}

var bitWidth = regexp.MustCompile(`^bit\((\d+)\)`)

// mapColumn returns the PostgreSQL column of source column c (see the
// package documentation's table). It fails for a type it has no mapping
// for, naming it.
func mapColumn(c sink.Column) (mapping, error) {
	source := c.ColumnType
	if source == "" {
		source = c.DataType
	}
	unsigned := c.Unsigned()
	switch c.DataType {
	case "tinyint", "bool", "boolean":
		return intMapping(source, 3), nil
	case "smallint":
		if unsigned {
			return intMapping(source, 5), nil
		}
		return intMapping(source, 4), nil
	case "mediumint":
		return intMapping(source, 8), nil
	case "int", "integer":
		if unsigned {
			return intMapping(source, 10), nil
		}
		return intMapping(source, 9), nil
	case "bigint":
		if unsigned {
			return intMapping(source, 20), nil
		}
		return intMapping(source, 18), nil
	case "year":
		return intMapping(source, 4), nil
	case "bit":
		n := c.Precision
		if m := bitWidth.FindStringSubmatch(c.ColumnType); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		if n <= 0 {
			n = 1
		}
		// The smallest integer type holding 2^n-1.
		switch {
		case n <= 15:
			return mapping{kind: kindInt, ddl: "smallint", format: "smallint", source: source, minDigits: 5}, nil
		case n <= 31:
			return mapping{kind: kindInt, ddl: "integer", format: "integer", source: source, minDigits: 10}, nil
		case n <= 63:
			return mapping{kind: kindInt, ddl: "bigint", format: "bigint", source: source, minDigits: 19}, nil
		}
		return mapping{kind: kindInt, ddl: "numeric(20)", format: "numeric(20,0)", source: source, minDigits: 20}, nil
	case "decimal", "numeric":
		if c.Precision <= 0 {
			return mapping{kind: kindDecimal, ddl: "numeric", format: "numeric", source: source}, nil
		}
		t := fmt.Sprintf("numeric(%d,%d)", c.Precision, c.Scale)
		return mapping{kind: kindDecimal, ddl: t, format: t, source: source}, nil
	case "float":
		return mapping{kind: kindFloat32, ddl: "real", format: "real", source: source}, nil
	case "double", "real", "double precision":
		return mapping{kind: kindFloat64, ddl: "double precision", format: "double precision", source: source}, nil
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum":
		return mapping{kind: kindText, ddl: "text", format: "text", source: source}, nil
	case "set":
		return mapping{kind: kindSet, ddl: "text[]", format: "text[]", source: source}, nil
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
		"geometrycollection", "geomcollection":
		return mapping{kind: kindBytes, ddl: "bytea", format: "bytea", source: source}, nil
	case "json":
		return mapping{kind: kindJSON, ddl: "jsonb", format: "jsonb", source: "json"}, nil
	case "date":
		return mapping{kind: kindDate, ddl: "date", format: "date", source: source}, nil
	case "time":
		return mapping{kind: kindTime, ddl: "interval", format: "interval", source: source, fsp: fsp(c)}, nil
	case "datetime":
		p := fsp(c)
		return mapping{kind: kindDatetime, ddl: fmt.Sprintf("timestamp(%d)", p),
			format: fmt.Sprintf("timestamp(%d) without time zone", p), source: source, fsp: p}, nil
	case "timestamp":
		p := fsp(c)
		return mapping{kind: kindTimestamp, ddl: fmt.Sprintf("timestamptz(%d)", p),
			format: fmt.Sprintf("timestamp(%d) with time zone", p), source: source, fsp: p}, nil
	}
	return mapping{}, fmt.Errorf("column %q has source type %s, which the PostgreSQL sink has no mapping for", c.Name, source)
}

// fsp is a temporal column's fractional second digits (0-6).
func fsp(c sink.Column) int {
	return min(max(c.Precision, 0), 6)
}

var (
	numericMod = regexp.MustCompile(`^numeric\((\d+),(\d+)\)$`)
	timeMod    = regexp.MustCompile(`^(timestamp|interval)\((\d)\)(.*)$`)
)

// compatible reports whether an existing column of PostgreSQL type have
// (format_type's text) takes every value of m exactly: m's type, or a wider
// one of the same family (a larger integer or numeric, double precision for
// real, character varying for text, more fractional second digits).
func compatible(m mapping, have string) bool {
	if have == m.format {
		return true
	}
	switch m.kind {
	case kindInt:
		for _, it := range intTypes {
			if have == it.name {
				return it.digits >= m.minDigits
			}
		}
		if have == "numeric" {
			return true
		}
		if p := numericMod.FindStringSubmatch(have); p != nil {
			prec, _ := strconv.Atoi(p[1])
			return p[2] == "0" && prec >= m.minDigits
		}
	case kindDecimal:
		if have == "numeric" {
			return true
		}
		want, p := numericMod.FindStringSubmatch(m.format), numericMod.FindStringSubmatch(have)
		if want != nil && p != nil {
			wp, _ := strconv.Atoi(want[1])
			ws, _ := strconv.Atoi(want[2])
			hp, _ := strconv.Atoi(p[1])
			hs, _ := strconv.Atoi(p[2])
			return hs >= ws && hp-hs >= wp-ws
		}
	case kindFloat32:
		return have == "double precision"
	case kindText:
		return have == "character varying"
	case kindDatetime, kindTimestamp, kindTime:
		base, want := strings.TrimSpace(strings.Replace(m.format, fmt.Sprintf("(%d)", m.fsp), "", 1)), m.fsp
		if have == base {
			return true // no modifier: 6 digits
		}
		if p := timeMod.FindStringSubmatch(have); p != nil {
			q, _ := strconv.Atoi(p[2])
			return p[1]+p[3] == base && q >= want
		}
	}
	return false
}
