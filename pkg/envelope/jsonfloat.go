package envelope

import (
	"fmt"
	"math"
	"strconv"
)

// AppendFloat appends f (of bits 32 or 64) the way the producer writes a
// FLOAT or DOUBLE value, as encoding/json does: the shortest form that
// reads back to the same float of that size, in exponent form below 1e-6
// and from 1e21 on (e-9, not e-09). It fails on an infinity or NaN, which
// JSON cannot carry.
func AppendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("floating point value %v has no JSON form", f)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
