package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSyncResultTable(t *testing.T) {
	r := &syncResult{Rows: 1000, Publish: time.Second, Targets: []syncTargetResult{
		{Target: "redis", Rows: 1000, Ceiling: 10 * time.Millisecond, Sync: 40 * time.Millisecond},
		{Target: "postgres", Rows: 1000, Ceiling: 50 * time.Millisecond, Sync: 0},
	}}
	if got := r.Targets[0].Fraction(); got != 0.25 {
		t.Errorf("redis Fraction = %v, want 0.25", got)
	}
	if got := r.Targets[1].Fraction(); !math.IsNaN(got) {
		t.Errorf("Fraction without a sync time = %v, want NaN", got)
	}
	want := strings.Join([]string{
		"| target   | ceiling rows/s | sync rows/s | sync / ceiling |",
		"| -------- | -------------: | ----------: | -------------: |",
		"| redis    |        100,000 |      25,000 |           0.25 |",
		"| postgres |         20,000 |           — |              — |",
		"",
	}, "\n")
	if got := syncResultTable(r); got != strings.ReplaceAll(want, "—", notMeasured) {
		t.Errorf("syncResultTable =\n%s\nwant\n%s", got, want)
	}

	doc := markdown(reportInput{Results: &results{Sync: r}, Runs: 1})
	if !strings.Contains(doc, "## Sync of a 1,000-row table (once)") || !strings.Contains(doc, "| redis    |        100,000 |") {
		t.Errorf("markdown has no sync section:\n%s", doc)
	}
	if doc := markdown(reportInput{Results: &results{}, Runs: 1}); strings.Contains(doc, "## Sync") {
		t.Errorf("markdown has a sync section without a sync measurement:\n%s", doc)
	}
}

func TestParseSyncRow(t *testing.T) {
	img := []byte(`{"id":7,"name":"item-7","qty":7,"price":"0.07","at":"2026-01-02T03:04:05.123456"}`)
	r, err := parseSyncRow(img, 6)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != 7 || string(r.Values[1]) != `"item-7"` || string(r.Values[3]) != `"0.07"` || len(r.Version) != 80 {
		t.Errorf("parseSyncRow = %+v (version of %d bytes)", r, len(r.Version))
	}
	if redisKey(r.ID) != "bench:synced:7" {
		t.Errorf("redisKey(7) = %q", redisKey(r.ID))
	}
	for _, v := range []struct {
		in   string
		want any
	}{{`7`, int64(7)}, {`"0.07"`, "0.07"}, {`null`, nil}} {
		if got, err := pgValue(json.RawMessage(v.in)); err != nil || got != v.want {
			t.Errorf("pgValue(%s) = %#v, %v; want %#v", v.in, got, err, v.want)
		}
	}
	if _, err := parseSyncRow([]byte(`{"id":7}`), 0); err == nil {
		t.Error("parseSyncRow of a row without the table's columns: no error")
	}
	want := "INSERT INTO bench.synced (id, name, qty, price, at, _dbsync) VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12) " +
		"ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, qty = EXCLUDED.qty, price = EXCLUDED.price, at = EXCLUDED.at, _dbsync = EXCLUDED._dbsync"
	if got := upsertSQL(2); got != want {
		t.Errorf("upsertSQL(2) =\n%s\nwant\n%s", got, want)
	}
}
