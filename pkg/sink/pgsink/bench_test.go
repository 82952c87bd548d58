package pgsink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/pgsink"
	"github.com/dbsync/dbsync/test/testenv"
)

// BenchmarkApply applies batches of 1,000 upserts of a six-column row
// (ns/op is per batch; rows/s is reported).
func BenchmarkApply(b *testing.B) {
	p := testenv.StartPostgres(b)
	p.CreateDB(b, "target")
	ctx := context.Background()
	s, err := pgsink.New(ctx, pgsink.Config{DSN: p.DSN("target")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tbl := &sink.Table{DB: "bench", Name: "rows", PK: []string{"id"}, Columns: []sink.Column{
		{Name: "id", DataType: "bigint", ColumnType: "bigint(20)"},
		{Name: "name", DataType: "varchar", ColumnType: "varchar(64)", Nullable: true},
		{Name: "total", DataType: "decimal", ColumnType: "decimal(12,2)", Precision: 12, Scale: 2, Nullable: true},
		{Name: "at", DataType: "datetime", ColumnType: "datetime(6)", Precision: 6, Nullable: true},
		{Name: "state", DataType: "enum", ColumnType: "enum('new','paid')", Nullable: true},
		{Name: "doc", DataType: "json", ColumnType: "json", Nullable: true},
	}}
	const size = 1000
	pos := uint32(0)
	b.ResetTimer()
	began := time.Now()
	for i := 0; i < b.N; i++ {
		changes := make([]*envelope.Envelope, size)
		for j := range changes {
			pos++
			after := fmt.Sprintf(`{"id":%d,"name":"customer %d","total":"%d.50","at":"2026-11-21T12:34:56.123456","state":"paid","doc":{"n":%d}}`, j+i%7*size, j, j, i)
			changes[j] = &envelope.Envelope{V: 1, ID: fmt.Sprint(pos), DB: "bench", Table: "rows", Type: envelope.TypeInsert, PK: tbl.PK,
				Source: envelope.Source{Name: "main", History: "h", File: "mysql-bin.000001", Pos: pos},
				After:  image(b, after)}
		}
		if err := s.Apply(ctx, batch(tbl, changes...)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/time.Since(began).Seconds(), "rows/s")
}
