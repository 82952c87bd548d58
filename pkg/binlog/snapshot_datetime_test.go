package binlog

import (
	"testing"
	"time"
)

// TestBinlogDatetime checks the text form of DATETIME and TIMESTAMP values
// a snapshot reads against what go-mysql decodes from the binlog, and that
// a malformed value is an error naming it.
func TestBinlogDatetime(t *testing.T) {
	for _, tc := range []struct {
		in        string
		dec       int
		timestamp bool
		want      any
	}{
		{"2026-11-29 14:33:07", 0, false, time.Date(2026, 11, 29, 14, 33, 7, 0, time.UTC)},
		{"2026-11-29 14:33:07.123456", 6, false, time.Date(2026, 11, 29, 14, 33, 7, 123456000, time.UTC)},
		{"2026-11-29 14:33:07.12", 2, true, time.Date(2026, 11, 29, 14, 33, 7, 120000000, time.UTC)},
		{"9999-12-31 23:59:59", 0, false, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"0000-00-00 00:00:00", 0, false, "0000-00-00 00:00:00"},
		{"0000-00-00 00:00:00.000", 3, true, "0000-00-00 00:00:00.000"},
		{"1000-01-01 00:00:00", 0, false, "1000-01-01 00:00:00"},
		{"2026-00-15 10:00:00.5", 1, false, "2026-00-15 10:00:00.5"},
		{"2026-11-29", 0, false, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := binlogDatetime(tc.in, tc.dec, tc.timestamp)
		if err != nil {
			t.Errorf("binlogDatetime(%q): %v", tc.in, err)
			continue
		}
		if wt, ok := tc.want.(time.Time); ok {
			if gt, ok := got.(time.Time); !ok || !gt.Equal(wt) {
				t.Errorf("binlogDatetime(%q) = %v, want %v", tc.in, got, wt)
			}
		} else if got != tc.want {
			t.Errorf("binlogDatetime(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "2026-11", "2026-11-29 14:33", "2026-1x-29 00:00:00", "2026--29 00:00:00", "2026-11-29 14:33:07:01", "-2026-11-29 00:00:00"} {
		if got, err := binlogDatetime(bad, 0, false); err == nil {
			t.Errorf("binlogDatetime(%q) = %v, want an error", bad, got)
		}
	}
}

// BenchmarkBinlogDatetime: a DATETIME(6) as a snapshot reads it.
//
//	go test ./pkg/binlog -run '^$' -bench BinlogDatetime
func BenchmarkBinlogDatetime(b *testing.B) {
	for b.Loop() {
		if _, err := binlogDatetime("2026-11-29 14:33:07.123456", 6, false); err != nil {
			b.Fatal(err)
		}
	}
}
