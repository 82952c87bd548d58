package bench

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// median returns the median of xs (the mean of the two middle values for an
// even count), ignoring NaNs; NaN when no value is left.
func median(xs []float64) float64 {
	vals := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			vals = append(vals, x)
		}
	}
	if len(vals) == 0 {
		return math.NaN()
	}
	slices.Sort(vals)
	mid := len(vals) / 2
	if len(vals)%2 == 1 {
		return vals[mid]
	}
	return (vals[mid-1] + vals[mid]) / 2
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be in ascending order: the smallest value such that at
// least p% of the values are at or below it. It returns 0 for an empty
// slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// column is one column of a text table.
type column struct {
	Title string
	// Right aligns the column's cells to the right (numbers).
	Right bool
}

// formatTable renders a Markdown table whose columns are padded to equal
// width, so that it reads well as plain text too. Rows shorter than cols are
// padded with empty cells; extra cells are dropped.
func formatTable(cols []column, rows [][]string) string {
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = max(len(c.Title), 3)
	}
	for _, r := range rows {
		for i := range cols {
			if i < len(r) {
				widths[i] = max(widths[i], len([]rune(r[i])))
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cols {
			cell := ""
			if i < len(cells) {
				cell = cells[i]
			}
			pad := strings.Repeat(" ", widths[i]-len([]rune(cell)))
			if c.Right {
				b.WriteString(" " + pad + cell + " |")
			} else {
				b.WriteString(" " + cell + pad + " |")
			}
		}
		b.WriteString("\n")
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.Title
	}
	line(titles)
	b.WriteString("|")
	for i, c := range cols {
		if c.Right {
			b.WriteString(" " + strings.Repeat("-", widths[i]-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", widths[i]) + " |")
		}
	}
	b.WriteString("\n")
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// notMeasured is printed for a value that was not measured.
const notMeasured = "—"

// fmtCount formats v rounded to an integer with thousands separators
// ("1,234,567"); notMeasured for NaN.
func fmtCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return notMeasured
	}
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	first := len(s) % 3
	if first == 0 {
		first = 3
	}
	b.WriteString(s[:first])
	for i := first; i < len(s); i += 3 {
		b.WriteByte(',')
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// fmtFloat formats v with the given decimals; notMeasured for NaN.
func fmtFloat(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return notMeasured
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// fmtMs formats d in milliseconds with two decimals.
func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond))
}

// mib converts bytes to MiB; NaN for a negative (unknown) size.
func mib(bytes int64) float64 {
	if bytes < 0 {
		return math.NaN()
	}
	return float64(bytes) / (1 << 20)
}

// ratio returns a/b, NaN when either is NaN or b is not positive.
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// perSecond returns n/elapsed in units per second, NaN for a zero duration.
func perSecond(n int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return math.NaN()
	}
	return float64(n) / elapsed.Seconds()
}
