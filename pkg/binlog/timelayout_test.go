package binlog

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// TestTimeLayoutMatchesAppendFormat checks the hand-written DATETIME and
// TIMESTAMP writer against package time's AppendFormat with the equivalent
// layout, for every fractional precision, both zones and the edges of
// MySQL's range, plus random instants; and that only the "2" types carry
// fractional digits.
func TestTimeLayoutMatchesAppendFormat(t *testing.T) {
	times := []time.Time{
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 29, 14, 33, 7, 123456789, time.UTC),
		time.Date(2026, 2, 3, 4, 5, 6, 7000, time.FixedZone("east", 5*3600+1800)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(38, 5, 6, 7, 8, 9, 10, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, time.Unix(rng.Int64N(253402300799), rng.Int64N(1e9)).In(time.FixedZone("", rng.IntN(50400)-25200)))
	}
	for _, typ := range []byte{mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP2} {
		for meta := uint16(0); meta <= 6; meta++ {
			for _, utc := range []bool{false, true} {
				l := newTimeLayout(typ, meta, utc)
				if l.frac != int(meta) {
					t.Fatalf("newTimeLayout(%d, %d): %d fractional digits, want %d", typ, meta, l.frac, meta)
				}
				for _, tm := range times {
					got := string(l.appendTime([]byte("x"), tm))
					want := "x" + tm.UTC().Format(l.goLayout())
					if got != want {
						t.Fatalf("%v with %d digits, utc %v: wrote %q, AppendFormat writes %q", tm, meta, utc, got, want)
					}
				}
			}
		}
	}
	if l := newTimeLayout(mysql.MYSQL_TYPE_DATETIME, 6, false); l.frac != 0 {
		t.Fatalf("old DATETIME type: %d fractional digits, want none", l.frac)
	}
	if got := newTimeLayout(mysql.MYSQL_TYPE_TIMESTAMP2, 3, true).goLayout(); got != "2006-01-02T15:04:05.000Z" {
		t.Fatalf("layout %q, want 2006-01-02T15:04:05.000Z", got)
	}
}

// BenchmarkTimeLayout measures writing one DATETIME(6) value.
func BenchmarkTimeLayout(b *testing.B) {
	l := newTimeLayout(mysql.MYSQL_TYPE_DATETIME2, 6, false)
	tm := time.Date(2026, 11, 29, 14, 33, 7, 123456000, time.UTC)
	buf := make([]byte, 0, 64)
	b.Run("appendTime", func(b *testing.B) {
		for b.Loop() {
			buf = l.appendTime(buf[:0], tm)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		layout := l.goLayout()
		for b.Loop() {
			buf = tm.UTC().AppendFormat(buf[:0], layout)
		}
	})
}

// TestTimeLayoutRFC3339UTC checks the envelope's source.ts form: RFC 3339
// in UTC is the layout without fractions, with "Z".
func TestTimeLayoutRFC3339UTC(t *testing.T) {
	tm := time.Date(2026, 11, 29, 14, 33, 7, 999999999, time.UTC)
	if got, want := string(timeLayout{utc: true}.appendTime(nil, tm)), tm.Format(time.RFC3339); got != want {
		t.Fatalf("wrote %q, RFC 3339 is %q", got, want)
	}
}
