package decode

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

func decodeBase64(s []byte, state binState) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	if err != nil {
		why := "the column is listed as binary"
		if state == binUnknown {
			why = "the envelope does not say which columns are binary, so []byte fields expect base64"
		}
		return nil, fmt.Errorf("value %q is not valid base64 (%s): %w", show(s), why, err)
	}
	return out[:n], nil
}

// setString: a JSON string as is (base64-decoded for a binary column), a
// number or boolean as its literal, a SET (an array of strings) joined with
// ",", and any other array or object as its JSON text.
func setString(v reflect.Value, raw []byte, c valueCtx) error {
	switch raw[0] {
	case 'n':
		v.SetString("")
	case '"':
		if c.binaryState() == binYes {
			s, err := unquote(raw)
			if err != nil {
				return err
			}
			b, err := decodeBase64(s, binYes)
			if err != nil {
				return err
			}
			v.SetString(string(b))
			return nil
		}
		s, err := unquoteString(raw)
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

// setBytes: base64 for binary columns (and when binary columns are
// unknown), UTF-8 bytes of a text column, the JSON text of an object or
// array, the literal of a number or boolean.
func setBytes(v reflect.Value, raw []byte, c valueCtx) error {
	b, err := bytesOf(raw, c)
	if err != nil {
		return err
	}
	v.SetBytes(b)
	return nil
}

func bytesOf(raw []byte, c valueCtx) ([]byte, error) {
	switch raw[0] {
	case 'n':
		return nil, nil
	case '"':
		s, err := unquote(raw)
		if err != nil {
			return nil, err
		}
		if st := c.binaryState(); st != binNo {
			return decodeBase64(s, st)
		}
		return append([]byte{}, s...), nil
	}
	return append([]byte{}, raw...), nil
}

func byteArraySetter(t reflect.Type) setter {
	return func(v reflect.Value, raw []byte, c valueCtx) error {
		if raw[0] == 'n' {
			v.SetZero()
			return nil
		}
		if raw[0] != '"' {
			return wrongKind(raw, t)
		}
		b, err := bytesOf(raw, c)
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

func setRawMessage(v reflect.Value, raw []byte, _ valueCtx) error {
	if raw[0] == 'n' {
		v.SetBytes(nil)
		return nil
	}
	v.SetBytes(append([]byte{}, raw...))
	return nil
}

// stringsSetter: a SET (JSON array of strings) or a comma-separated
// string ("" is an empty, non-nil slice).
func stringsSetter(t reflect.Type) setter {
	return func(v reflect.Value, raw []byte, _ valueCtx) error {
		switch raw[0] {
		case 'n':
			v.SetZero()
		case '[':
			p := reflect.New(t)
			if err := json.Unmarshal(raw, p.Interface()); err != nil {
				return fmt.Errorf("value %s is not an array of strings: %w", show(raw), err)
			}
			v.Set(p.Elem())
		case '"':
			s, err := unquoteString(raw)
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
			return wrongKind(raw, t)
		}
		return nil
	}
}

// jsonSetter: json.Unmarshal of the raw value into a fresh value (JSON
// columns into maps, slices, structs and interfaces).
func jsonSetter(t reflect.Type) setter {
	return func(v reflect.Value, raw []byte, _ valueCtx) error {
		if raw[0] == 'n' {
			v.SetZero()
			return nil
		}
		p := reflect.New(t)
		if err := json.Unmarshal(raw, p.Interface()); err != nil {
			return fmt.Errorf("value %s does not unmarshal into %s: %w", show(raw), t, err)
		}
		v.Set(p.Elem())
		return nil
	}
}
