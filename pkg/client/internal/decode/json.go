package decode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"unicode/utf8"
)

func trim(raw []byte) []byte {
	if len(raw) > 0 && (isSpace(raw[0]) || isSpace(raw[len(raw)-1])) {
		return bytes.TrimSpace(raw)
	}
	return raw
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// show renders a JSON value for an error message, shortened.
func show(raw []byte) string {
	const max = 64
	if len(raw) > max {
		return string(raw[:max]) + "..."
	}
	return string(raw)
}

func kindName(raw []byte) string {
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

func wrongKind(raw []byte, t reflect.Type) error {
	return fmt.Errorf("a JSON %s %s cannot be stored in %s", kindName(raw), show(raw), t)
}

// unquote returns the contents of the JSON string raw, without copying
// when it has no escapes.
func unquote(raw []byte) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, fmt.Errorf("invalid JSON string %s", show(raw))
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return s, nil
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("invalid JSON string %s: %w", show(raw), err)
	}
	return []byte(out), nil
}

// unquoteString is unquote for a string result (one copy).
func unquoteString(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return string(s), nil
		}
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("invalid JSON string %s: %w", show(raw), err)
	}
	return out, nil
}
