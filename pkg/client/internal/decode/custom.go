package decode

import (
	"database/sql"
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

func ptrSetter(t reflect.Type) setter {
	elem := t.Elem()
	if elem == reflect.TypeFor[time.Time]() {
		// A zero date is no instant: nil, like NULL.
		return func(v reflect.Value, raw []byte, c valueCtx) error {
			if raw[0] == 'n' {
				v.SetZero()
				return nil
			}
			tm, zero, err := timeOf(raw, c)
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
	inner := setterFor(elem)
	return func(v reflect.Value, raw []byte, c valueCtx) error {
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

func nullSetter(t reflect.Type) setter {
	if t.Field(0).Type == reflect.TypeFor[time.Time]() {
		// A zero date is Valid=false, like NULL.
		return func(v reflect.Value, raw []byte, c valueCtx) error {
			if raw[0] == 'n' {
				v.SetZero()
				return nil
			}
			tm, zero, err := timeOf(raw, c)
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
	inner := setterFor(t.Field(0).Type)
	return func(v reflect.Value, raw []byte, c valueCtx) error {
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

// customSetter handles types whose pointer implements sql.Scanner and/or
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
func customSetter(t reflect.Type, scan, text bool) setter {
	return func(v reflect.Value, raw []byte, c valueCtx) error {
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
			if s, err = unquote(raw); err != nil {
				return err
			}
			if c.binaryState() == binYes {
				var b []byte
				if b, err = decodeBase64(s, binYes); err != nil {
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
				if tm, zero, perr := parseTime(s, c.loc); perr == nil {
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
				if dv, err = driverNumber(raw); err == nil {
					err = pi.(sql.Scanner).Scan(dv)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("value %s does not fit %s: %w", show(raw), t, err)
		}
		v.Set(p.Elem())
		return nil
	}
}

// driverNumber converts a JSON number to the driver value a Scanner
// expects: int64, uint64 beyond int64's range, or float64.
func driverNumber(raw []byte) (any, error) {
	neg, mag, e := parseInteger(raw)
	switch {
	case e == numOK && !neg && mag <= math.MaxInt64:
		return int64(mag), nil
	case e == numOK && !neg:
		return mag, nil
	case e == numOK && mag <= 1<<63:
		return int64(-mag), nil
	}
	if !isNumber(raw) {
		return nil, fmt.Errorf("value %s is not a number", show(raw))
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return nil, fmt.Errorf("value %s overflows float64", show(raw))
	}
	return f, nil
}
