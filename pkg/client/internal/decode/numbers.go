package decode

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
)

type numErr int

const (
	numOK       numErr = iota
	numSyntax          // not a number
	numFraction        // a number, but not an integer
	numRange           // an integer beyond 64 bits
)

// parseInteger parses a plain decimal literal exactly: an optional '-',
// digits, and optionally '.' followed by digits that must all be zero.
// Exponents and non-zero fractions give numFraction when the text is a
// valid number otherwise.
func parseInteger(b []byte) (neg bool, mag uint64, e numErr) {
	i := 0
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			e = numRange
			continue
		}
		if e == numOK {
			mag = mag*10 + d
		}
	}
	if i == start {
		return neg, 0, numSyntax
	}
	if i == len(b) {
		return neg, mag, e
	}
	// The rest must be a fraction and/or exponent of a valid number.
	if !isNumber(b) {
		return neg, 0, numSyntax
	}
	if b[i] == '.' {
		j := i + 1
		for ; j < len(b) && b[j] == '0'; j++ {
		}
		if j == len(b) { // "12.00": an exact integer
			return neg, mag, e
		}
	}
	return neg, 0, numFraction
}

// isNumber reports whether b is a JSON-style decimal number
// (-?digits(.digits)?([eE][+-]?digits)?), rejecting NaN, Inf, hex and the
// like that strconv would take.
func isNumber(b []byte) bool {
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

// numberText returns the text of a number held by raw: the literal of a
// JSON number or the contents of a JSON string (DECIMAL). ok is false for
// other kinds.
func numberText(raw []byte) (text []byte, ok bool, err error) {
	switch c := raw[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		return raw, true, nil
	case c == '"':
		s, err := unquote(raw)
		return s, true, err
	}
	return nil, false, nil
}

func intSetter(t reflect.Type) setter {
	bits := t.Bits()
	maxPos := uint64(1)<<(bits-1) - 1
	return func(v reflect.Value, raw []byte, _ valueCtx) error {
		if raw[0] == 'n' {
			v.SetInt(0)
			return nil
		}
		text, ok, err := numberText(raw)
		if err != nil {
			return err
		}
		if !ok {
			return wrongKind(raw, t)
		}
		neg, mag, e := parseInteger(text)
		if e == numOK && ((neg && mag > maxPos+1) || (!neg && mag > maxPos)) {
			e = numRange
		}
		if e != numOK {
			return intError(e, raw, t)
		}
		if neg {
			v.SetInt(int64(-mag)) // two's complement: -(1<<63) stays exact
		} else {
			v.SetInt(int64(mag))
		}
		return nil
	}
}

func uintSetter(t reflect.Type) setter {
	max := uint64(math.MaxUint64) >> (64 - t.Bits())
	return func(v reflect.Value, raw []byte, _ valueCtx) error {
		if raw[0] == 'n' {
			v.SetUint(0)
			return nil
		}
		text, ok, err := numberText(raw)
		if err != nil {
			return err
		}
		if !ok {
			return wrongKind(raw, t)
		}
		neg, mag, e := parseInteger(text)
		if e == numOK && neg && mag != 0 {
			return fmt.Errorf("value %s is negative; %s is unsigned", show(raw), t)
		}
		if e == numOK && mag > max {
			e = numRange
		}
		if e != numOK {
			return intError(e, raw, t)
		}
		v.SetUint(mag)
		return nil
	}
}

func intError(e numErr, raw []byte, t reflect.Type) error {
	switch e {
	case numRange:
		return fmt.Errorf("value %s overflows %s", show(raw), t)
	case numFraction:
		return fmt.Errorf("value %s is not a whole number; %s holds integers only", show(raw), t)
	}
	return fmt.Errorf("value %s is not a number", show(raw))
}

func floatSetter(t reflect.Type) setter {
	bits := t.Bits()
	return func(v reflect.Value, raw []byte, _ valueCtx) error {
		if raw[0] == 'n' {
			v.SetFloat(0)
			return nil
		}
		text, ok, err := numberText(raw)
		if err != nil {
			return err
		}
		if !ok {
			return wrongKind(raw, t)
		}
		if !isNumber(text) {
			return fmt.Errorf("value %s is not a number", show(raw))
		}
		f, err := strconv.ParseFloat(string(text), bits)
		if err != nil {
			return fmt.Errorf("value %s overflows %s", show(raw), t)
		}
		v.SetFloat(f)
		return nil
	}
}

func boolSetter(t reflect.Type) setter {
	return func(v reflect.Value, raw []byte, _ valueCtx) error {
		switch {
		case raw[0] == 'n':
			v.SetBool(false)
		case string(raw) == "true" || string(raw) == "1":
			v.SetBool(true)
		case string(raw) == "false" || string(raw) == "0":
			v.SetBool(false)
		case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
			return fmt.Errorf("value %s is not a boolean; %s takes 0 or 1 (TINYINT(1), BIT(1))", show(raw), t)
		default:
			return wrongKind(raw, t)
		}
		return nil
	}
}
