package sync_test

import (
	"database/sql"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// workload writes random transactions to the three tables until finish:
// inserts, updates and deletes on a small key space (so rows are inserted,
// changed, deleted and inserted again), updates that move a pairs row to
// another key, and multi-statement transactions.
type workload struct {
	t    testing.TB
	db   *sql.DB
	rng  *rand.Rand
	seed int64
	stop chan struct{}
	wg   sync.WaitGroup
	// counts of committed statements by kind, and failed transactions
	// (a lock wait or a duplicate key: rolled back, nothing to sync).
	inserts, updates, deletes, txs, rolledBack int
}

// keySpace bounds the ids the workload writes.
const keySpace = 120

func startWorkload(t testing.TB, db *sql.DB, seed int64) *workload {
	w := &workload{t: t, db: db, seed: seed, rng: rand.New(rand.NewPCG(uint64(seed), 7)), stop: make(chan struct{})}
	w.wg.Add(1)
	go w.run()
	return w
}

// finish stops the workload and says what it did.
func (w *workload) finish() string {
	close(w.stop)
	w.wg.Wait()
	return fmt.Sprintf("seed %d: %d transactions (%d rolled back), %d inserts, %d updates, %d deletes", w.seed, w.txs, w.rolledBack, w.inserts, w.updates, w.deletes)
}

func (w *workload) run() {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		if err := w.transaction(); err != nil {
			w.rolledBack++
			if !strings.Contains(err.Error(), "Duplicate") && !strings.Contains(err.Error(), "Deadlock") {
				// The producer's kills do not touch MariaDB: any other
				// failure is the test's.
				w.t.Errorf("workload: %v", err)
				return
			}
		}
		time.Sleep(time.Duration(w.rng.IntN(3)) * time.Millisecond)
	}
}

// transaction commits one to four random statements.
func (w *workload) transaction() error {
	tx, err := w.db.Begin()
	if err != nil {
		return err
	}
	// Zero dates and enum '' are values the contract carries.
	if _, err := tx.Exec("SET SESSION sql_mode = ''"); err != nil {
		_ = tx.Rollback()
		return err
	}
	n := 1 + w.rng.IntN(4)
	var ins, upd, del int
	for range n {
		stmt, kind := w.statement()
		if _, err := tx.Exec(stmt); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("%s: %w", stmt, err)
		}
		switch kind {
		case 'i':
			ins++
		case 'u':
			upd++
		default:
			del++
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	w.txs++
	w.inserts += ins
	w.updates += upd
	w.deletes += del
	return nil
}

// statement is a random statement and its kind ('i', 'u' or 'd').
func (w *workload) statement() (string, byte) {
	r := w.rng
	id := 1 + r.IntN(keySpace)
	op := r.IntN(10)
	switch r.IntN(3) {
	case 0: // all_types
		switch {
		case op < 4:
			cols, vals := w.allTypesRow()
			return fmt.Sprintf("INSERT INTO shop.all_types (id, %s) VALUES (%d, %s) ON DUPLICATE KEY UPDATE %s",
				strings.Join(cols, ", "), id, strings.Join(vals, ", "), assignments(cols, vals)), 'i'
		case op < 8:
			cols, vals := w.allTypesRow()
			k := 1 + r.IntN(len(cols))
			return fmt.Sprintf("UPDATE shop.all_types SET %s WHERE id = %d", assignments(cols[:k], vals[:k]), id), 'u'
		default:
			return fmt.Sprintf("DELETE FROM shop.all_types WHERE id = %d", id), 'd'
		}
	case 1: // orders
		status := []string{"new", "paid", "shipped", "cancelled"}[r.IntN(4)]
		note := "NULL"
		if r.IntN(2) == 0 {
			note = quote(w.text(40))
		}
		total := fmt.Sprintf("'%d.%02d'", r.IntN(1_000_000_000), r.IntN(100))
		switch {
		case op < 4:
			return fmt.Sprintf("INSERT INTO shop.orders VALUES (%d, '%s', %s, %s, NOW(3)) ON DUPLICATE KEY UPDATE status = VALUES(status), total = VALUES(total), note = VALUES(note), updated = NOW(3)",
				id, status, total, note), 'i'
		case op < 8:
			return fmt.Sprintf("UPDATE shop.orders SET status = '%s', total = %s, note = %s, updated = NOW(3) WHERE id = %d", status, total, note, id), 'u'
		default:
			return fmt.Sprintf("DELETE FROM shop.orders WHERE id = %d", id), 'd'
		}
	default: // pairs: a composite key; some updates move the row
		a := []string{"x", "y:z", "ü", "a\\\\b"}[r.IntN(4)]
		b := r.IntN(keySpace / 4)
		switch {
		case op < 4:
			return fmt.Sprintf("INSERT IGNORE INTO shop.pairs VALUES ('%s', %d, %s)", a, b, quote(w.text(20))), 'i'
		case op < 6:
			return fmt.Sprintf("UPDATE shop.pairs SET v = %s WHERE a = '%s' AND b = %d", quote(w.text(20)), a, b), 'u'
		case op < 8:
			return fmt.Sprintf("UPDATE IGNORE shop.pairs SET b = %d WHERE a = '%s' AND b = %d", r.IntN(keySpace/4), a, b), 'u'
		default:
			return fmt.Sprintf("DELETE FROM shop.pairs WHERE a = '%s' AND b = %d", a, b), 'd'
		}
	}
}

func assignments(cols, vals []string) string {
	parts := make([]string, len(cols))
	for i := range cols {
		parts[i] = cols[i] + " = " + vals[i]
	}
	return strings.Join(parts, ", ")
}

func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// text is a random string of up to n characters, some of them outside
// ASCII.
func (w *workload) text(n int) string {
	alphabet := []rune("abcXYZ 019_-'\"\\\n\tçé€日本😀")
	k := w.rng.IntN(n + 1)
	out := make([]rune, k)
	for i := range out {
		out[i] = alphabet[w.rng.IntN(len(alphabet))]
	}
	return string(out)
}

func (w *workload) hexBytes(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(w.rng.IntN(256))
	}
	return "x'" + hex.EncodeToString(b) + "'"
}

// allTypesRow is a random value (a tenth of them NULL) for every column
// of shop.all_types but id, shuffled.
func (w *workload) allTypesRow() (cols, vals []string) {
	r := w.rng
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	gen := map[string]func() string{
		"ti":   func() string { return fmt.Sprint(r.IntN(256) - 128) },
		"tiu":  func() string { return fmt.Sprint(r.IntN(256)) },
		"si":   func() string { return fmt.Sprint(r.IntN(65536) - 32768) },
		"siu":  func() string { return fmt.Sprint(r.IntN(65536)) },
		"mi":   func() string { return fmt.Sprint(r.IntN(1<<24) - 1<<23) },
		"miu":  func() string { return fmt.Sprint(r.IntN(1 << 24)) },
		"i":    func() string { return fmt.Sprint(r.Int32() - math.MaxInt32/2) },
		"iu":   func() string { return fmt.Sprint(r.Uint32()) },
		"bi":   func() string { return pick(fmt.Sprint(r.Int64()), fmt.Sprint(-r.Int64()), "-9223372036854775808") },
		"biu":  func() string { return pick(fmt.Sprint(r.Uint64()), "18446744073709551615", "0") },
		"flag": func() string { return pick("0", "1") },
		"dec1": func() string { return fmt.Sprintf("'%s%d.%02d'", pick("", "-"), r.IntN(100_000_000), r.IntN(100)) },
		"dec2": func() string {
			return fmt.Sprintf("'%s%d%d.%030d'", pick("", "-"), r.Int64N(1e17), r.Int64N(1e17), r.Int64N(1e18))
		},
		"f":    func() string { return pick("1.5", "-0.25", "0", "3.0e10", "123456", "-7.125") },
		"d":    func() string { return fmt.Sprint(r.NormFloat64() * 1e6) },
		"b1":   func() string { return pick("b'0'", "b'1'") },
		"b64":  func() string { return fmt.Sprint(r.Uint64()) },
		"c":    func() string { return quote(w.text(10)) },
		"vc":   func() string { return quote(w.text(100)) },
		"tt":   func() string { return quote(w.text(50)) },
		"t":    func() string { return quote(w.text(300)) },
		"mt":   func() string { return quote(w.text(300)) },
		"lt":   func() string { return quote(w.text(300)) },
		"lat":  func() string { return pick("'café'", "'naïve ß'", "''", "'plain'") },
		"bin":  func() string { return w.hexBytes(r.IntN(5)) },
		"vbin": func() string { return w.hexBytes(r.IntN(11)) },
		"tb":   func() string { return w.hexBytes(r.IntN(40)) },
		"bl":   func() string { return w.hexBytes(r.IntN(200)) },
		"mb":   func() string { return w.hexBytes(r.IntN(200)) },
		"lb":   func() string { return w.hexBytes(r.IntN(200)) },
		"j": func() string {
			return pick(`'{"a": [1, 2.5, "x"], "b": null, "c": {"d": true}}'`, `'[]'`, `'"just a string"'`, `'12345678901234567890'`,
				fmt.Sprintf(`'{"n": %d, "s": "%s"}'`, r.IntN(1000), pick("ü", "q\\\\\"", "")))
		},
		"dt": func() string {
			return pick("'0000-00-00'", "'1000-01-01'", "'9999-12-31'", fmt.Sprintf("'%04d-%02d-%02d'", 1970+r.IntN(80), 1+r.IntN(12), 1+r.IntN(28)))
		},
		"tm": func() string {
			return pick("'-838:59:59'", "'838:59:59'", "'00:00:00'", fmt.Sprintf("'%s%d:%02d:%02d'", pick("", "-"), r.IntN(839), r.IntN(60), r.IntN(60)))
		},
		"tm6": func() string {
			return fmt.Sprintf("'%02d:%02d:%02d.%06d'", r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1_000_000))
		},
		"yr": func() string { return pick("0", "1901", "2155", fmt.Sprint(1901+r.IntN(255))) },
		"dtm": func() string {
			return pick("'0000-00-00 00:00:00'", "'1000-01-01 00:00:00'", fmt.Sprintf("'%04d-%02d-%02d %02d:%02d:%02d'", 1000+r.IntN(8999), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60)))
		},
		"dtm6": func() string {
			return fmt.Sprintf("'%04d-%02d-%02d %02d:%02d:%02d.%06d'", 1000+r.IntN(8999), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1_000_000))
		},
		"ts": func() string {
			return pick("'0000-00-00 00:00:00'", fmt.Sprintf("FROM_UNIXTIME(%d)", 1+r.IntN(2_147_483_000)))
		},
		"ts6": func() string {
			return fmt.Sprintf("FROM_UNIXTIME(%d.%06d)", 1+r.IntN(2_147_483_000), r.IntN(1_000_000))
		},
		"e":  func() string { return pick("'small'", "'medium'", "'large'", "''") },
		"st": func() string { return pick("''", "'red'", "'green,blue'", "'red,green,blue'") },
		"g":  func() string { return fmt.Sprintf("ST_GeomFromText('POINT(%d %d)')", r.IntN(100), r.IntN(100)) },
	}
	for _, col := range slices.Sorted(maps.Keys(gen)) {
		f := gen[col]
		cols = append(cols, col)
		if r.IntN(10) == 0 {
			vals = append(vals, "NULL")
		} else {
			vals = append(vals, f())
		}
	}
	r.Shuffle(len(cols), func(i, j int) { cols[i], cols[j] = cols[j], cols[i]; vals[i], vals[j] = vals[j], vals[i] })
	return cols, vals
}
