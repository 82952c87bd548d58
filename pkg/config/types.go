package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Port is a TCP port. In JSON it may be a string ("3306", as dbsync 1
// files have it) or a number (3306); it is kept as its decimal text. Validate
// accepts 1..65535.
type Port string

// UnmarshalJSON accepts a JSON string or an integer number; null leaves the
// port unchanged. Any other JSON value, or a non-integer number, is an error.
func (p *Port) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*p = Port(s)
		return nil
	case len(data) > 0 && (data[0] == '-' || (data[0] >= '0' && data[0] <= '9')):
		n, err := strconv.ParseInt(string(data), 10, 64)
		if err != nil {
			return fmt.Errorf("%s is not a port (want an integer 1-65535)", data)
		}
		*p = Port(strconv.FormatInt(n, 10))
		return nil
	}
	return fmt.Errorf("got %s, want a port number like 3306 or \"3306\"", describeJSON(data))
}

// Int returns the port as a number, or an error saying why it is not a port
// in 1..65535 (empty, not all digits, or out of range).
func (p Port) Int() (int, error) {
	s := string(p)
	if s == "" {
		return 0, fmt.Errorf("is required (a port 1-65535)")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a port (1-65535)", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return n, nil
}

// String returns the port's text.
func (p Port) String() string { return string(p) }

// Duration is a time.Duration that reads from JSON either as a Go duration
// string ("3s", "250ms", "1m30s") or as a number of milliseconds (250), and
// writes back as a duration string.
type Duration time.Duration

// UnmarshalJSON parses a duration string with time.ParseDuration or a number
// of milliseconds; null leaves the value unchanged. Other JSON values,
// unparsable strings and numbers out of range are errors.
func (d *Duration) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (want e.g. \"3s\", \"250ms\", \"1m30s\", or a number of milliseconds)", s)
		}
		*d = Duration(v)
		return nil
	case len(data) > 0 && (data[0] == '-' || (data[0] >= '0' && data[0] <= '9')):
		ms, err := strconv.ParseFloat(string(data), 64)
		if err != nil {
			return fmt.Errorf("%s is not a number of milliseconds", data)
		}
		ns := ms * float64(time.Millisecond)
		if math.IsNaN(ns) || ns > math.MaxInt64 || ns < math.MinInt64 {
			return fmt.Errorf("%s milliseconds is out of range", data)
		}
		*d = Duration(math.Round(ns))
		return nil
	}
	return fmt.Errorf("got %s, want a duration like \"3s\" or a number of milliseconds", describeJSON(data))
}

// MarshalJSON writes the duration as a string such as "3s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration ("3s").
func (d Duration) String() string { return time.Duration(d).String() }

// describeJSON names the kind of a raw JSON value for error messages, with
// the value itself when it is short.
func describeJSON(data []byte) string {
	kind := kindOfJSON(data)
	if len(data) <= 40 && kind != "null" {
		return kind + " " + string(data)
	}
	return kind
}

// kindOfJSON names the kind of a JSON value: "a string", "a number", ...
func kindOfJSON(data []byte) string {
	if len(data) == 0 {
		return "a value"
	}
	switch data[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// Unpublishable policies (Tables.OnUnpublishable).
const (
	// PolicyStop halts the producer at a change it cannot publish, naming
	// the table, the change and the fix.
	PolicyStop = "stop"
	// PolicySkip publishes a marker on Tables.DeadLetterSubject instead,
	// counts it (dbsync_unpublishable_total), logs it and goes on.
	PolicySkip = "skip"
)

// TablePolicy is Tables.OnUnpublishable: what happens to a change that
// cannot be published (larger than the broker accepts, a table name that
// cannot be a subject, a column in a character set dbsync cannot convert).
// In JSON it is one policy for every table ("stop" or "skip"), or an object
// mapping table patterns to policies ({"shop.logs": "skip"}). A table takes
// the policy of a pattern naming it exactly; otherwise "stop" when any
// matching pattern says stop, "skip" when one says skip, and "stop" when
// none matches.
type TablePolicy struct {
	// All is the policy of every table when the JSON was a string.
	All string
	// ByTable maps patterns to policies when the JSON was an object.
	ByTable map[string]string
}

// UnmarshalJSON accepts a string or an object of strings; null leaves the
// policy unchanged.
func (p *TablePolicy) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*p = TablePolicy{All: s}
		return nil
	case len(data) > 0 && data[0] == '{':
		var m map[string]string
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("got %s, want {\"db.table\": \"stop\" or \"skip\", ...}", describeJSON(data))
		}
		*p = TablePolicy{ByTable: m}
		return nil
	}
	return fmt.Errorf("got %s, want \"stop\", \"skip\" or an object {\"db.table\": \"skip\"}", describeJSON(data))
}

// MarshalJSON writes the form it was read from.
func (p TablePolicy) MarshalJSON() ([]byte, error) {
	if p.ByTable != nil {
		return json.Marshal(p.ByTable)
	}
	return json.Marshal(p.All)
}

// Skip reports whether db.table's unpublishable changes are skipped.
func (p TablePolicy) Skip(db, table string) bool {
	if p.ByTable == nil {
		return p.All == PolicySkip
	}
	skip, stop := false, false
	for pattern, policy := range p.ByTable {
		tp, err := ParseTablePattern(pattern)
		if err != nil || !tp.Match(db, table) {
			continue
		}
		if tp.exact() {
			return policy == PolicySkip
		}
		stop = stop || policy == PolicyStop
		skip = skip || policy == PolicySkip
	}
	return skip && !stop
}

func (p TablePolicy) clone() TablePolicy {
	c := TablePolicy{All: p.All}
	if p.ByTable != nil {
		c.ByTable = make(map[string]string, len(p.ByTable))
		for k, v := range p.ByTable {
			c.ByTable[k] = v
		}
	}
	return c
}
