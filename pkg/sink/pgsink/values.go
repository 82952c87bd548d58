package pgsink

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// formError says a value does not have the JSON form of its column's
// source type: the source column's type changed.
type formError struct{ want string }

func (e *formError) Error() string { return "not " + e.want }

// unstorableError says a value of the contract has no exact PostgreSQL
// counterpart in its column's type.
type unstorableError struct{ reason, fix string }

func (e *unstorableError) Error() string { return e.reason }

// infinity stands for MySQL's zero date in date and timestamp columns.
const negInfinity = "-infinity"

// param converts raw, the change's JSON value of a column mapped as m, into
// the statement parameter for it: a string PostgreSQL parses (sent in text
// format, cast to the column's type), []byte for bytea, []string for
// text[], nil for null. It fails with a *formError when raw is not the JSON
// form m's source type has, and an *unstorableError for a value PostgreSQL
// cannot hold exactly.
func param(m mapping, raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch m.kind {
	case kindInt:
		if !isInteger(raw) {
			return nil, &formError{want: "an integer"}
		}
		return string(raw), nil
	case kindFloat32, kindFloat64:
		if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return nil, &formError{want: "a number"}
		}
		return string(raw), nil
	case kindJSON:
		return string(raw), nil
	case kindSet:
		var names []string
		if raw[0] != '[' || json.Unmarshal(raw, &names) != nil {
			return nil, &formError{want: "an array of SET member names"}
		}
		if names == nil {
			names = []string{}
		}
		return names, nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return nil, &formError{want: "a string"}
	}
	switch m.kind {
	case kindText:
		if strings.IndexByte(s, 0) >= 0 {
			return nil, &unstorableError{
				reason: "the text holds a NUL character, which PostgreSQL text cannot store",
				fix:    "remove the NUL characters from the source value (or make the source column binary, which the sink stores as bytea)",
			}
		}
		return s, nil
	case kindBytes:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, &formError{want: "base64 bytes"}
		}
		return b, nil
	case kindDate:
		if s == "0000-00-00" {
			return negInfinity, nil
		}
		if len(s) != 10 || s[4] != '-' || s[7] != '-' || s[5:7] == "00" || s[8:10] == "00" {
			return nil, zeroPartError(s)
		}
		return s, nil
	case kindDatetime, kindTimestamp:
		if isZeroDatetime(s) {
			return negInfinity, nil
		}
		if len(s) < 19 || s[10] != 'T' {
			// Dates with a zero month or day keep MySQL's literal.
			return nil, zeroPartError(s)
		}
		return s, nil
	}
	// kindDecimal, kindTime: PostgreSQL parses the contract's text.
	return s, nil
}

// zeroPartError is the refusal of a date with a zero month or day, which
// MySQL stores in some SQL modes and PostgreSQL has no value for.
func zeroPartError(s string) error {
	return &unstorableError{
		reason: fmt.Sprintf("the date %q has a zero month or day, which PostgreSQL cannot store (only the all-zero date has a counterpart: -infinity)", s),
		fix:    "correct the source row to a real date (or NULL, or the all-zero date) and let the source's sql_mode refuse such dates (NO_ZERO_IN_DATE, NO_ZERO_DATE), then sync the table again from a snapshot (this change can never be applied)",
	}
}

// isZeroDatetime reports whether s is MySQL's zero DATETIME/TIMESTAMP
// literal, "0000-00-00 00:00:00" with an all-zero fraction if any.
func isZeroDatetime(s string) bool {
	rest, ok := strings.CutPrefix(s, "0000-00-00 00:00:00")
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	return rest[0] == '.' && strings.Trim(rest[1:], "0") == "" && len(rest) > 1
}

// isInteger reports whether raw is a JSON integer: an optional minus and
// digits.
func isInteger(raw []byte) bool {
	d := raw
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 {
		return false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// selectExpr is the expression Rows selects for column c, scanned into the
// value scanDest returns.
func selectExpr(c *column) string {
	switch c.m.kind {
	case kindFloat32, kindFloat64:
		return c.ident + "::float8"
	case kindBytes:
		return "replace(encode(" + c.ident + ", 'base64'), E'\\n', '')"
	case kindSet:
		return "array_to_json(" + c.ident + ")::text"
	case kindDate:
		return c.ident + "::date"
	case kindDatetime:
		return c.ident + "::timestamp"
	case kindTimestamp:
		return c.ident + "::timestamptz"
	case kindTime:
		return c.ident + "::interval"
	case kindDecimal:
		// A wider numeric prints more fraction digits than the source's.
		return c.ident + "::" + c.m.format + "::text"
	}
	return c.ident + "::text"
}

// scanDest is where Rows scans column c.
func scanDest(c *column) any {
	switch c.m.kind {
	case kindFloat32, kindFloat64:
		return new(pgtype.Float8)
	case kindDate:
		return new(pgtype.Date)
	case kindDatetime:
		return new(pgtype.Timestamp)
	case kindTimestamp:
		return new(pgtype.Timestamptz)
	case kindTime:
		return new(pgtype.Interval)
	}
	return new(pgtype.Text)
}

// contractValue turns what Rows scanned for column c (scanDest's value)
// back into the contract's JSON form: the bytes the producer writes for the
// same source value (a JSON column's value is jsonb's normal form: keys
// ordered by length then bytes, no duplicates, compact).
func contractValue(c *column, v any) (json.RawMessage, error) {
	null := json.RawMessage("null")
	switch v := v.(type) {
	case *pgtype.Text:
		if !v.Valid {
			return null, nil
		}
		switch c.m.kind {
		case kindInt:
			return json.RawMessage(v.String), nil
		case kindJSON:
			var b bytes.Buffer
			if err := json.Compact(&b, []byte(v.String)); err != nil {
				return nil, err
			}
			return b.Bytes(), nil
		case kindSet:
			var names []string
			if err := json.Unmarshal([]byte(v.String), &names); err != nil {
				return nil, err
			}
			b := []byte{'['}
			for i, n := range names {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, n)
			}
			return append(b, ']'), nil
		}
		// kindDecimal, kindText, kindBytes (base64 already).
		return appendJSONString(nil, v.String), nil
	case *pgtype.Float8:
		if !v.Valid {
			return null, nil
		}
		bits := 64
		if c.m.kind == kindFloat32 {
			bits = 32
		}
		return appendFloat(nil, v.Float64, bits)
	case *pgtype.Date:
		if !v.Valid {
			return null, nil
		}
		if v.InfinityModifier == pgtype.NegativeInfinity {
			return json.RawMessage(`"0000-00-00"`), nil
		}
		if v.InfinityModifier != pgtype.Finite {
			return nil, fmt.Errorf("date %s has no source value", v.InfinityModifier)
		}
		return appendJSONString(nil, v.Time.Format("2006-01-02")), nil
	case *pgtype.Timestamp:
		if !v.Valid {
			return null, nil
		}
		return datetimeValue(v.Time, v.InfinityModifier, c.m.fsp, false)
	case *pgtype.Timestamptz:
		if !v.Valid {
			return null, nil
		}
		return datetimeValue(v.Time, v.InfinityModifier, c.m.fsp, true)
	case *pgtype.Interval:
		if !v.Valid {
			return null, nil
		}
		if v.Days != 0 || v.Months != 0 {
			return nil, fmt.Errorf("interval of %d months %d days is not a TIME value", v.Months, v.Days)
		}
		return appendJSONString(nil, timeValue(v.Microseconds, c.m.fsp)), nil
	}
	return nil, fmt.Errorf("unexpected scanned value %T", v)
}

// datetimeValue is the contract's DATETIME (utc false) or TIMESTAMP (utc
// true) form of t with fsp fractional digits; -infinity is MySQL's zero
// literal.
func datetimeValue(t time.Time, inf pgtype.InfinityModifier, fsp int, utc bool) (json.RawMessage, error) {
	switch inf {
	case pgtype.NegativeInfinity:
		s := "0000-00-00 00:00:00"
		if fsp > 0 {
			s += "." + strings.Repeat("0", fsp)
		}
		return appendJSONString(nil, s), nil
	case pgtype.Infinity:
		return nil, fmt.Errorf("timestamp infinity has no source value")
	}
	layout := "2006-01-02T15:04:05"
	if fsp > 0 {
		layout += "." + strings.Repeat("0", fsp)
	}
	if utc {
		layout += "Z"
	}
	return appendJSONString(nil, t.UTC().Format(layout)), nil
}

// timeValue is the contract's TIME form of usec microseconds: "[-]HH:MM:SS",
// with fsp fractional digits when the fraction is not zero (as the binlog
// decoder writes it).
func timeValue(usec int64, fsp int) string {
	sign := ""
	if usec < 0 {
		sign, usec = "-", -usec
	}
	frac := usec % 1e6
	secs := usec / 1e6
	h, m, sec := secs/3600, secs/60%60, secs%60
	if frac == 0 {
		if secs == 0 {
			return "00:00:00"
		}
		return fmt.Sprintf("%s%02d:%02d:%02d", sign, h, m, sec)
	}
	out := fmt.Sprintf("%s%02d:%02d:%02d.%06d", sign, h, m, sec, frac)
	return out[:len(out)-(6-fsp)]
}

// appendFloat appends f as the producer writes it (envelope.AppendFloat).
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	return envelope.AppendFloat(b, f, bits)
}

// appendJSONString appends s as a JSON string the way the producer does.
func appendJSONString(b []byte, s string) []byte { return envelope.AppendString(b, s) }
