package redissink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/redissink"
	"github.com/dbsync/dbsync/test/testenv"
)

const (
	benchBatch   = 500 // rows per batch
	benchBatches = 20  // distinct batches, cycled: 10000 distinct rows
)

// benchTable is an orders table of eight columns.
func benchTable() *sink.Table {
	t := &sink.Table{DB: "shop", Name: "orders", PK: []string{"id"}}
	for _, c := range []string{"id", "customer_id", "status", "total", "currency", "created_at", "updated_at", "note"} {
		t.Columns = append(t.Columns, sink.Column{Name: c})
	}
	return t
}

// benchRows returns benchBatches batches of benchBatch row images.
func benchRows() [][]map[string]json.RawMessage {
	out := make([][]map[string]json.RawMessage, benchBatches)
	for b := range out {
		out[b] = make([]map[string]json.RawMessage, benchBatch)
		for j := range out[b] {
			id := b*benchBatch + j
			out[b][j] = row("id", fmt.Sprint(id), "customer_id", fmt.Sprint(100000+id%997), "status", `"paid"`,
				"total", fmt.Sprintf(`"%d.%02d"`, id%1000, id%100), "currency", `"EUR"`,
				"created_at", `"2026-11-21T12:34:56.123456"`, "updated_at", `"2026-11-21T04:34:56Z"`,
				"note", `"deliver to the back door, ring twice"`)
		}
	}
	return out
}

// BenchmarkApply applies batches of 500 single-row upserts (inserts, then
// replacements of the same 10000 rows), each a new coordinate.
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	r := testenv.StartRedis(b)
	s, err := redissink.New(ctx, redissink.Config{Addr: r.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tab := benchTable()
	if err := s.Prepare(ctx, tab); err != nil {
		b.Fatal(err)
	}
	rows := benchRows()
	changes := make([]*envelope.Envelope, benchBatch)
	b.ResetTimer()
	began := time.Now()
	for i := range b.N {
		for j, img := range rows[i%benchBatches] {
			changes[j] = change(tab, envelope.TypeInsert, pos(uint32(1000+i), j), nil, img)
		}
		batch := sink.Batch{Table: tab, Changes: changes, Key: "dbsync.shop.orders",
			Progress: client.Progress{Last: client.CoordinateOf(changes[benchBatch-1])}}
		if err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/time.Since(began).Seconds(), "rows/s")
}

// BenchmarkPipelinedHSET writes the same rows with a go-redis pipeline of
// one HSET per row and no dbsync: Redis's own ceiling for BenchmarkApply.
func BenchmarkPipelinedHSET(b *testing.B) {
	ctx := context.Background()
	r := testenv.StartRedis(b)
	c := r.Client(b)
	rows := benchRows()
	b.ResetTimer()
	began := time.Now()
	for i := range b.N {
		p := c.Pipeline()
		for _, img := range rows[i%benchBatches] {
			args := make([]any, 0, 2*len(img))
			for k, v := range img {
				args = append(args, k, []byte(v))
			}
			p.HSet(ctx, "shop:orders:"+string(img["id"]), args...)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/time.Since(began).Seconds(), "rows/s")
}
