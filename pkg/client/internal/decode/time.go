package decode

import (
	"fmt"
	"reflect"
	"time"
)

func setTime(v reflect.Value, raw []byte, c valueCtx) error {
	if raw[0] == 'n' {
		v.SetZero()
		return nil
	}
	tm, _, err := timeOf(raw, c) // a zero date is time.Time{}
	if err != nil {
		return err
	}
	*(v.Addr().Interface().(*time.Time)) = tm
	return nil
}

func timeOf(raw []byte, c valueCtx) (time.Time, bool, error) {
	if raw[0] != '"' {
		return time.Time{}, false, wrongKind(raw, reflect.TypeFor[time.Time]())
	}
	s, err := unquote(raw)
	if err != nil {
		return time.Time{}, false, err
	}
	return parseTime(s, c.loc)
}

// parseTime parses the envelope's date forms: "2006-01-02" (DATE,
// midnight in loc), "2006-01-02T15:04:05[.fraction]" (DATETIME, wall clock in
// loc), the same with a trailing "Z" (TIMESTAMP, that instant, returned in
// loc). A space is accepted instead of the "T". A date with a zero month or
// day (MySQL's zero dates such as "0000-00-00 00:00:00.000000") reports
// zero=true and time.Time{}.
func parseTime(s []byte, loc *time.Location) (tm time.Time, zero bool, err error) {
	bad := func(why string) (time.Time, bool, error) {
		return time.Time{}, false, fmt.Errorf("value %q is not a DATE, DATETIME or TIMESTAMP "+
			"(want 2006-01-02, 2006-01-02T15:04:05[.ffffff] or 2006-01-02T15:04:05[.ffffff]Z): %s", show(s), why)
	}
	num := func(b []byte) (int, bool) {
		n := 0
		for _, ch := range b {
			if ch < '0' || ch > '9' {
				return 0, false
			}
			n = n*10 + int(ch-'0')
		}
		return n, true
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return bad("bad date")
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 {
		return bad("bad date")
	}
	var hour, minute, sec, nsec int
	utc := false
	rest := s[10:]
	if len(rest) > 0 {
		if rest[0] != 'T' && rest[0] != ' ' {
			return bad("bad date/time separator")
		}
		rest = rest[1:]
		if len(rest) < 8 || rest[2] != ':' || rest[5] != ':' {
			return bad("bad time of day")
		}
		var ok4, ok5, ok6 bool
		hour, ok4 = num(rest[0:2])
		minute, ok5 = num(rest[3:5])
		sec, ok6 = num(rest[6:8])
		if !ok4 || !ok5 || !ok6 {
			return bad("bad time of day")
		}
		rest = rest[8:]
		if len(rest) > 0 && rest[0] == '.' {
			j := 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			digits := j - 1
			if digits == 0 || digits > 9 {
				return bad("bad fraction of a second")
			}
			nsec, _ = num(rest[1:j])
			for k := digits; k < 9; k++ {
				nsec *= 10
			}
			rest = rest[j:]
		}
		if len(rest) > 0 && rest[0] == 'Z' {
			utc = true
			rest = rest[1:]
		}
		if len(rest) != 0 {
			return bad("trailing characters")
		}
		if hour > 23 || minute > 59 || sec > 59 {
			return bad("time of day out of range")
		}
	}
	if month == 0 || day == 0 {
		return time.Time{}, true, nil
	}
	if month > 12 || day > daysIn(year, month) {
		return bad("no such day")
	}
	if utc {
		return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC).In(loc), false, nil
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), false, nil
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// durationSetter: a TIME string ("-838:59:59", "12:34:56.123456"; hours may
// exceed 24) as a Duration; a JSON number as nanoseconds, like any int64.
func durationSetter(t reflect.Type) setter {
	asInt := intSetter(t)
	return func(v reflect.Value, raw []byte, c valueCtx) error {
		switch raw[0] {
		case 'n':
			v.SetInt(0)
			return nil
		case '"':
			s, err := unquote(raw)
			if err != nil {
				return err
			}
			d, err := parseTimeOfDay(s)
			if err != nil {
				return err
			}
			v.SetInt(int64(d))
			return nil
		}
		return asInt(v, raw, c)
	}
}

// parseTimeOfDay parses a MySQL TIME value: [-]H+:MM:SS[.fraction].
func parseTimeOfDay(s []byte) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("value %q is not a TIME (want [-]HHH:MM:SS[.ffffff])", show(s))
	}
	i := 0
	neg := false
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	var h int64
	start := i
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		h = h*10 + int64(s[i]-'0')
		if h > 1_000_000 {
			return bad()
		}
	}
	if i == start || len(s)-i < 6 || s[i] != ':' || s[i+3] != ':' {
		return bad()
	}
	two := func(b []byte) (int64, bool) {
		if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
			return 0, false
		}
		return int64(b[0]-'0')*10 + int64(b[1]-'0'), true
	}
	m, ok1 := two(s[i+1 : i+3])
	sec, ok2 := two(s[i+4 : i+6])
	if !ok1 || !ok2 || m > 59 || sec > 59 {
		return bad()
	}
	i += 6
	var ns int64
	if i < len(s) {
		if s[i] != '.' {
			return bad()
		}
		digits := 0
		for i++; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' || digits == 9 {
				return bad()
			}
			ns = ns*10 + int64(s[i]-'0')
			digits++
		}
		if digits == 0 {
			return bad()
		}
		for ; digits < 9; digits++ {
			ns *= 10
		}
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(ns)
	if neg {
		d = -d
	}
	return d, nil
}
