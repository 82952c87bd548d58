package producer_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/internal/e2e"
	"github.com/dbsync/dbsync/internal/testenv"
)

// TestSchemaChangesWhileLagging: rows are written, then the table is
// altered (ADD, DROP, a column moved with AFTER, RENAME, a type change)
// while the producer is down; when it catches up, every row is published
// with the columns it was written with, never shifted onto other names.
func TestSchemaChangesWhileLagging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, a INT, b VARCHAR(10), c INT)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	// The producer is down: everything below is read later, after all the
	// ALTERs have run.
	e.DB.Exec(t,
		"INSERT INTO shop.t VALUES (1, 10, 'one', 100)",
		"ALTER TABLE shop.t ADD COLUMN d INT DEFAULT 7",
		"INSERT INTO shop.t VALUES (2, 20, 'two', 200, 2000)",
		"ALTER TABLE shop.t DROP COLUMN a",
		"INSERT INTO shop.t VALUES (3, 'three', 300, 3000)",
		"ALTER TABLE shop.t MODIFY COLUMN d INT AFTER id",
		"INSERT INTO shop.t VALUES (4, 4000, 'four', 400)",
		"ALTER TABLE shop.t RENAME COLUMN c TO cc",
		"INSERT INTO shop.t VALUES (5, 5000, 'five', 500)",
		"ALTER TABLE shop.t MODIFY COLUMN cc BIGINT UNSIGNED",
		"INSERT INTO shop.t VALUES (6, 6000, 'six', 18446744073709551615)")
	p = e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.WaitFor("shop.t", 6, 30*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	want := []string{
		`{"id":1,"a":10,"b":"one","c":100}`,
		`{"id":2,"a":20,"b":"two","c":200,"d":2000}`,
		`{"id":3,"b":"three","c":300,"d":3000}`,
		`{"id":4,"d":4000,"b":"four","c":400}`,
		`{"id":5,"d":5000,"b":"five","cc":500}`,
		`{"id":6,"d":6000,"b":"six","cc":18446744073709551615}`,
	}
	got := e.Read("shop.t")
	for i, env := range got {
		if i >= len(want) {
			break
		}
		if s := afterJSON(t, env.After, strings.Split(keysOf(want[i]), ",")); s != want[i] {
			t.Errorf("row %d published as %s, want %s", i+1, s, want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
}

// keysOf lists the keys of a flat JSON object in order.
func keysOf(obj string) string {
	dec := json.NewDecoder(strings.NewReader(obj))
	dec.UseNumber()
	var keys []string
	_, _ = dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		_ = dec.Decode(&v)
	}
	return strings.Join(keys, ",")
}

// afterJSON renders img with exactly the given keys in that order, and
// fails when img has other keys.
func afterJSON(t *testing.T, img map[string]json.RawMessage, keys []string) string {
	t.Helper()
	if len(img) != len(keys) {
		t.Errorf("image has columns %v, want %v", mapKeys(img), keys)
	}
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + k + `":`)
		b.Write(img[k])
	}
	b.WriteString("}")
	return b.String()
}

func mapKeys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestMetadataNotFullIsRefused: a server that could log FULL row metadata
// but does not is refused at start, with the fix.
func TestMetadataNotFullIsRefused(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvWith(t, producerBin, e2e.Stan, testenv.MariaDBOptions{RowMetadata: "MINIMAL"})
	p := e.Start()
	if code := p.Wait(60 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
	}
	if !strings.Contains(p.Output(), "binlog_row_metadata") || !strings.Contains(p.Output(), "SET GLOBAL binlog_row_metadata='FULL'") {
		t.Errorf("the refusal lacks the setting or the fix:\n%s", p.Output())
	}
}
