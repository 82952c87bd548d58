package binlog

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// ValueError reports a column value the type contract cannot express. It is
// fatal: dbsync does not publish a row it would have to garble.
type ValueError struct {
	DB, Table, Column string
	Reason            string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("table %s.%s column %q: %s", e.DB, e.Table, e.Column, e.Reason)
}

// padBinary restores the trailing zero bytes of a BINARY(n) value that the
// binlog leaves out (a copy; other columns' values are returned as they are).
func padBinary(c *column, v []byte) []byte {
	if len(v) >= c.padTo {
		return v
	}
	out := make([]byte, c.padTo)
	copy(out, v)
	return out
}

// appendValue appends the JSON form of v, as go-mysql decoded it for column c,
// following the type contract of docs/envelope.md.
func appendValue(b []byte, c *column, v any) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	switch c.kind {
	case kindNumber:
		return appendNumber(b, c, v)
	case kindBit:
		if n, ok := v.(int64); ok {
			return strconv.AppendUint(b, uint64(n), 10), nil
		}
	case kindDecimal:
		if s, ok := v.(string); ok {
			return appendJSONString(b, s), nil
		}
	case kindText:
		switch s := v.(type) {
		case string:
			return appendText(b, c, s)
		case []byte:
			return appendText(b, c, string(s))
		}
	case kindBytes:
		switch s := v.(type) {
		case string:
			return appendBase64(b, padBinary(c, []byte(s))), nil
		case []byte:
			return appendBase64(b, padBinary(c, s)), nil
		}
	case kindJSON:
		var doc []byte
		switch s := v.(type) {
		case string:
			doc = []byte(s)
		case []byte:
			doc = s
		default:
			return nil, fmt.Errorf("partial JSON update (binlog_row_value_options=PARTIAL_JSON) is not supported: set binlog_row_value_options='' on the server")
		}
		if len(doc) == 0 {
			// MySQL writes an empty document for an invalid insert in
			// non-strict mode; MySQL itself reads it back as JSON null.
			return append(b, "null"...), nil
		}
		if !json.Valid(doc) {
			return nil, fmt.Errorf("value is not a valid JSON document: %.60q", doc)
		}
		return append(b, doc...), nil
	case kindDate:
		if s, ok := v.(string); ok {
			return appendJSONString(b, s), nil
		}
	case kindDatetime, kindTimestamp:
		switch t := v.(type) {
		case time.Time:
			// go-mysql's ParseTime: DATETIME as its wall clock in UTC,
			// TIMESTAMP as the instant.
			b = append(b, '"')
			b = c.layout.appendTime(b, t)
			return append(b, '"'), nil
		case string:
			// Zero dates and dates before 1970 stay strings.
			return appendDatetime(b, t, c.kind == kindTimestamp), nil
		}
	case kindEnum:
		if n, ok := v.(int64); ok {
			if n == 0 {
				// MySQL's "error value" for an invalid ENUM in non-strict mode.
				return append(b, `""`...), nil
			}
			if int(n) > len(c.values) {
				return nil, fmt.Errorf("ENUM index %d is beyond the %d known members", n, len(c.values))
			}
			return appendJSONString(b, c.values[n-1]), nil
		}
	case kindSet:
		if n, ok := v.(int64); ok {
			b = append(b, '[')
			first := true
			for i := 0; i < 64 && uint64(n)>>i != 0; i++ {
				if uint64(n)&(1<<i) == 0 {
					continue
				}
				if i >= len(c.values) {
					return nil, fmt.Errorf("SET bit %d is beyond the %d known members", i, len(c.values))
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				b = appendJSONString(b, c.values[i])
			}
			return append(b, ']'), nil
		}
	}
	return nil, fmt.Errorf("unexpected decoded value %T for a %s column", v, typeName(c.realType))
}

// appendNumber writes integers exactly, turning a signed decode of an
// UNSIGNED column (when the server did not log signedness) back into the
// unsigned value.
func appendNumber(b []byte, c *column, v any) ([]byte, error) {
	switch n := v.(type) {
	case int8:
		if c.unsigned {
			return strconv.AppendUint(b, uint64(uint8(n)), 10), nil
		}
		return strconv.AppendInt(b, int64(n), 10), nil
	case int16:
		if c.unsigned {
			return strconv.AppendUint(b, uint64(uint16(n)), 10), nil
		}
		return strconv.AppendInt(b, int64(n), 10), nil
	case int32:
		if c.unsigned {
			if c.realType == mysql.MYSQL_TYPE_INT24 {
				return strconv.AppendUint(b, uint64(uint32(n)&0xFFFFFF), 10), nil
			}
			return strconv.AppendUint(b, uint64(uint32(n)), 10), nil
		}
		return strconv.AppendInt(b, int64(n), 10), nil
	case int64:
		if c.unsigned {
			return strconv.AppendUint(b, uint64(n), 10), nil
		}
		return strconv.AppendInt(b, n, 10), nil
	case int:
		return strconv.AppendInt(b, int64(n), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(n), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(n), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(n), 10), nil
	case uint64:
		return strconv.AppendUint(b, n, 10), nil
	case float32:
		return appendFloat(b, float64(n), 32)
	case float64:
		return appendFloat(b, n, 64)
	}
	return nil, fmt.Errorf("unexpected decoded value %T for a %s column", v, typeName(c.realType))
}

// appendFloat appends f in the envelope's JSON form (envelope.AppendFloat).
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	return envelope.AppendFloat(b, f, bits)
}

// appendText writes a character column's bytes as a UTF-8 JSON string,
// converting from the column's character set (buildTable admits only the
// ones handled here).
func appendText(b []byte, c *column, s string) ([]byte, error) {
	switch c.charset {
	case "latin1":
		return appendJSONString(b, latin1ToUTF8(s)), nil
	case "utf8", "utf8mb3", "utf8mb4", "ascii":
		return appendJSONString(b, s), nil
	}
	return nil, fmt.Errorf("character set %q is not supported: convert the column to utf8mb4", c.charset)
}

// cp1252 maps the bytes 0x80-0x9F of MySQL's latin1 (which is Windows-1252)
// to Unicode; 0x81, 0x8D, 0x8F, 0x90 and 0x9D map to themselves, as MySQL does.
var cp1252 = [32]rune{
	0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
	0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
}

func latin1ToUTF8(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch < 0x80:
			sb.WriteByte(ch)
		case ch < 0xA0:
			sb.WriteRune(cp1252[ch-0x80])
		default:
			sb.WriteRune(rune(ch))
		}
	}
	return sb.String()
}

// appendDatetime turns go-mysql's "2006-01-02 15:04:05.000000" into
// "2006-01-02T15:04:05.000000" (plus "Z" for a TIMESTAMP, which go-mysql
// renders in UTC). Dates with a zero year, month or day keep MySQL's literal.
func appendDatetime(b []byte, s string, utc bool) []byte {
	if len(s) < 19 || s[10] != ' ' || strings.HasPrefix(s, "0000") || s[5:7] == "00" || s[8:10] == "00" {
		return appendJSONString(b, s)
	}
	b = append(b, '"')
	b = append(b, s[:10]...)
	b = append(b, 'T')
	b = append(b, s[11:]...)
	if utc {
		b = append(b, 'Z')
	}
	return append(b, '"')
}

func appendBase64(b []byte, data []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, data)
	return append(b, '"')
}

// appendJSONString appends s as a JSON string in the envelope's form.
func appendJSONString(b []byte, s string) []byte { return envelope.AppendString(b, s) }
