package binlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/testenv"
)

// replica applies changes in order, as a consumer does: insert and read
// upsert, update moves the row, delete removes it. Rows are keyed by the
// JSON of their key columns and hold their "after" image as JSON.
type replica struct {
	key  []string
	rows map[string]string
}

func newReplica(key ...string) *replica { return &replica{key: key, rows: map[string]string{}} }

func (r *replica) apply(t *testing.T, data []byte) *envelope.Envelope {
	t.Helper()
	env, err := envelope.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	switch env.Type {
	case envelope.TypeInsert, envelope.TypeRead:
		r.rows[r.keyOf(t, env.After)] = image(t, env.After)
	case envelope.TypeUpdate:
		delete(r.rows, r.keyOf(t, env.Before))
		r.rows[r.keyOf(t, env.After)] = image(t, env.After)
	case envelope.TypeDelete:
		delete(r.rows, r.keyOf(t, env.Before))
	}
	return env
}

func (r *replica) keyOf(t *testing.T, img map[string]json.RawMessage) string {
	t.Helper()
	parts := make([]string, len(r.key))
	for i, k := range r.key {
		v, ok := img[k]
		if !ok {
			t.Fatalf("image %v lacks key column %s", img, k)
		}
		parts[i] = string(v)
	}
	return strings.Join(parts, ",")
}

func image(t *testing.T, img map[string]json.RawMessage) string {
	t.Helper()
	b, err := json.Marshal(img) // map keys sorted: canonical
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tableImages reads a table as the replica holds it: key → canonical
// JSON image, every column a string or null (the test tables hold
// integers and strings only, so the JSON forms compare after that).
func tableImages(t *testing.T, db *sql.DB, table string, key ...string) map[string]string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := map[string]string{}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		img := map[string]json.RawMessage{}
		for i, c := range cols {
			img[c] = canonical(vals[i])
		}
		parts := make([]string, len(key))
		for i, k := range key {
			parts[i] = string(img[k])
		}
		out[strings.Join(parts, ",")] = image(t, img)
	}
	return out
}

// canonical renders a scanned value as the JSON the test compares: numbers
// stay numbers, strings are quoted.
func canonical(v sql.NullString) json.RawMessage {
	if !v.Valid {
		return json.RawMessage("null")
	}
	if n, err := strconv.ParseInt(v.String, 10, 64); err == nil && strconv.FormatInt(n, 10) == v.String {
		return json.RawMessage(v.String)
	}
	if n, err := strconv.ParseUint(v.String, 10, 64); err == nil && strconv.FormatUint(n, 10) == v.String {
		return json.RawMessage(v.String)
	}
	b, _ := json.Marshal(v.String)
	return b
}

// normalizeImages rewrites a replica's images through canonical, so that a
// JSON string "7" and a number 7 do not differ only by the test's scan.
func normalizeImages(t *testing.T, rows map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range rows {
		var img map[string]json.RawMessage
		if err := json.Unmarshal([]byte(v), &img); err != nil {
			t.Fatal(err)
		}
		for c, raw := range img {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				img[c] = canonical(sql.NullString{String: s, Valid: true})
			}
		}
		parts := strings.Split(k, ",")
		for i, part := range parts {
			var s string
			if json.Unmarshal([]byte(part), &s) == nil {
				parts[i] = string(canonical(sql.NullString{String: s, Valid: true}))
			}
		}
		out[strings.Join(parts, ",")] = image(t, img)
	}
	return out
}

func compareReplica(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	got, want = normalizeImages(t, got), normalizeImages(t, want)
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %s = %s", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %s = %s", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 10 {
			diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
		}
		t.Fatalf("%s: the replica differs from the table (%d rows vs %d):\n%s", what, len(got), len(want), strings.Join(diffs, "\n"))
	}
}

// TestSnapshotKeys snapshots tables chunked by every kind of key, while
// nothing writes: the read rows are exactly the table.
func TestSnapshotKeys(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	sqlDB := db.DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, s := range []string{
		"CREATE DATABASE k",
		"CREATE TABLE k.composite (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT, PRIMARY KEY (a, b))",
		"CREATE TABLE k.strkey (code VARCHAR(20) COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, v INT)",
		"CREATE TABLE k.gaps (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, v INT)",
		"CREATE TABLE k.uniq (u INT NOT NULL, w INT NULL, v INT, UNIQUE KEY nullable (w), UNIQUE KEY usable (u))",
		"CREATE TABLE k.keyless (v INT, s VARCHAR(10))",
		"CREATE TABLE k.deckey (d DECIMAL(30,0) NOT NULL PRIMARY KEY, v INT)",
		"CREATE TABLE k.enumkey (e ENUM('b','a','c') NOT NULL PRIMARY KEY, v INT)",
	} {
		if _, err := sqlDB.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	var vals []string
	for a := 0; a < 7; a++ {
		for _, b := range []string{"x", "a", "B", "é", "zz"} {
			vals = append(vals, fmt.Sprintf("(%d, '%s', %d)", a, b, a))
		}
	}
	exec(t, sqlDB, "INSERT INTO k.composite VALUES "+strings.Join(vals, ","))
	exec(t, sqlDB, "INSERT INTO k.strkey VALUES ('b', 1), ('A', 2), ('c', 3), ('äb', 4), ('aa', 5), ('Z', 6), ('', 7), ('0', 8)")
	exec(t, sqlDB, "INSERT INTO k.gaps VALUES (1, 1), (2, 2), (1000, 3), (1001, 4), (99999999, 5), (18446744073709551615, 6), (0, 7)")
	exec(t, sqlDB, "INSERT INTO k.uniq VALUES (5, NULL, 1), (3, NULL, 2), (9, 1, 3), (-1, 2, 4), (100, NULL, 5)")
	exec(t, sqlDB, "INSERT INTO k.keyless VALUES (1, 'a'), (1, 'a'), (2, NULL)")
	// Adjacent keys beyond 2^53: bound as strings they would compare as
	// doubles and tie at a chunk's edge.
	exec(t, sqlDB, "INSERT INTO k.deckey VALUES (1152921504606846976, 1), (1152921504606846977, 2), (1152921504606846978, 3), (-5, 4)")
	// ENUM orders by member index but compares by name: not a chunk key.
	exec(t, sqlDB, "INSERT INTO k.enumkey VALUES ('a', 1), ('b', 2), ('c', 3)")
	_, src, _ := connectTest(ctx, t, db)
	start, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := startSnapshotHarness(ctx, t, db, start)
	for _, tc := range []struct {
		table   string
		key     []string
		keyName string
		chunk   int
	}{
		{"composite", []string{"a", "b"}, "PRIMARY", 4},
		{"strkey", []string{"code"}, "PRIMARY", 3},
		{"gaps", []string{"id"}, "PRIMARY", 2},
		{"uniq", []string{"u"}, "usable", 2},
		{"keyless", []string{"v", "s"}, "", 2},
		{"deckey", []string{"d"}, "PRIMARY", 1},
		{"enumkey", []string{"e"}, "", 1},
	} {
		rd, err := OpenSnapshotReader(ctx, h.cfg, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		plan, err := rd.Plan(ctx, "k", tc.table)
		rd.Close()
		if err != nil {
			t.Fatal(err)
		}
		if plan.KeyName != tc.keyName {
			t.Errorf("k.%s: chunked by %q, want %q", tc.table, plan.KeyName, tc.keyName)
		}
		published, chunks := h.snapshotTable(ctx, "k", tc.table, tc.chunk)
		want := tableImages(t, sqlDB, "k."+tc.table, tc.key...)
		rep := newReplica(tc.key...)
		if tc.keyName == "" {
			// Read in one go: one chunk, every row (duplicates included).
			if chunks != 1 || published != 3 {
				t.Fatalf("k.%s: %d rows in %d chunks, want 3 in 1", tc.table, published, chunks)
			}
		}
		for i := 0; i < published; i++ {
			rep.apply(t, h.next(ctx).Data)
		}
		compareReplica(t, "k."+tc.table, rep.rows, want)
		if tc.keyName != "" && chunks != (len(want)+tc.chunk)/tc.chunk && chunks != (len(want)+tc.chunk-1)/tc.chunk {
			t.Errorf("k.%s: %d rows in %d chunks of %d", tc.table, len(want), chunks, tc.chunk)
		}
		t.Logf("k.%s: %d rows in %d chunks by %s", tc.table, published, chunks, plan.KeyName)
	}
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestSnapshotUnderWrites snapshots a table in small chunks while writers
// insert, update and delete its rows, the rows of the chunk being read
// among them: a replica applying the stream in order ends equal to the
// table. Run with and without MariaDB's exact snapshot position (Low), so
// both ways of reconciling are exercised.
func TestSnapshotUnderWrites(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"exact", "conservative"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			snapshotUnderWrites(t, mode == "conservative")
		})
	}
}

// snapshotUnderWrites is TestSnapshotUnderWrites; withoutLow drops the
// chunks' Low watermark, as on a server that cannot name its snapshot's
// position (MySQL): every change since the window opened then counts.
func snapshotUnderWrites(t *testing.T, withoutLow bool) {
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	sqlDB := db.DB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	exec(t, sqlDB, "CREATE DATABASE w")
	exec(t, sqlDB, "CREATE TABLE w.items (id INT NOT NULL PRIMARY KEY, v INT NOT NULL, s VARCHAR(20))")
	const initial = 20000
	for i := 0; i < initial; i += 1000 {
		var vals []string
		for j := i; j < i+1000; j++ {
			vals = append(vals, fmt.Sprintf("(%d, 0, 'r%d')", j*2, j))
		}
		exec(t, sqlDB, "INSERT INTO w.items VALUES "+strings.Join(vals, ","))
	}
	_, src, _ := connectTest(ctx, t, db)
	start, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := startSnapshotHarness(ctx, t, db, start)
	h.withoutLow = withoutLow
	// Writers: random ids over the whole key range, so some hit the chunk
	// being read, some rows already read, some not read yet.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			for !stop.Load() {
				id := rng.IntN(initial * 2)
				var err error
				switch rng.IntN(4) {
				case 0:
					_, err = sqlDB.Exec("INSERT INTO w.items VALUES (?, 1, 'new') ON DUPLICATE KEY UPDATE v = v + 1", id)
				case 1, 2:
					_, err = sqlDB.Exec("UPDATE w.items SET v = v + 1, s = ? WHERE id = ?", fmt.Sprintf("u%d", rng.IntN(1000)), id)
				case 3:
					_, err = sqlDB.Exec("DELETE FROM w.items WHERE id = ?", id)
				}
				if isDeadlock(err) {
					continue // rolled back by InnoDB: two writers crossed
				}
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("write: %v", err)
					return
				}
				writes.Add(1)
			}
		}(uint64(w))
	}
	rep := newReplica("id")
	applied := make(chan struct{})
	var reads atomic.Int64
	go func() {
		defer close(applied)
		for {
			select {
			case r := <-h.rows:
				env := rep.apply(t, r.Data)
				if env.Type == envelope.TypeRead {
					reads.Add(1)
				}
				if env.DB == "w" && env.Table == "done" {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	published, chunks := h.snapshotTable(ctx, "w", "items", 500)
	stop.Store(true)
	wg.Wait()
	exec(t, sqlDB, "CREATE TABLE w.done (id INT PRIMARY KEY)")
	exec(t, sqlDB, "INSERT INTO w.done VALUES (1)")
	select {
	case <-applied:
	case <-ctx.Done():
		t.Fatal("the stream did not reach the final marker")
	}
	delete(rep.rows, "1") // the marker's row
	for k, v := range rep.rows {
		if !strings.Contains(v, `"s"`) {
			delete(rep.rows, k) // (w.done's row: no "s" column)
		}
	}
	compareReplica(t, "w.items", rep.rows, tableImages(t, sqlDB, "w.items", "id"))
	t.Logf("%d chunks, %d rows published by the snapshot, %d writes during it; the replica equals the table", chunks, published, writes.Load())
	if writes.Load() < 100 {
		t.Errorf("only %d writes ran during the snapshot: the test did not exercise the reconciliation", writes.Load())
	}
}

// isDeadlock reports InnoDB's deadlock error (1213), which concurrent
// writers of random rows run into now and then.
func isDeadlock(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Error 1213")
}
