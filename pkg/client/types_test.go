package client_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/test/testenv"
)

// AllTypes holds every type of the contract (pkg/binlog/testdata/all_types.sql)
// in its natural Go type.
type AllTypes struct {
	ID   int32
	Ti   int8
	Tiu  uint8
	Si   int16
	Siu  uint16
	Mi   int32
	Miu  uint32
	I    int
	Iu   uint32
	Bi   int64
	Biu  uint64
	Flag bool
	Dec1 string
	Dec2 decimal.Decimal
	F    float32
	D    float64
	B1   bool   `db:"b1"`
	B64  uint64 `db:"b64"`
	C    string
	Vc   string
	Tt   string
	T    string
	Mt   string
	Lt   string
	Lat  string
	Bin  []byte
	Vbin []byte
	Tb   []byte
	Bl   []byte
	Mb   []byte
	Lb   []byte
	J    json.RawMessage
	Dt   time.Time
	Tm   string
	Tm6  time.Duration `db:"tm6"`
	Yr   int
	Dtm  time.Time
	Dtm6 time.Time `db:"dtm6"`
	Ts   time.Time
	Ts6  *time.Time `db:"ts6"`
	E    string
	St   []string
	G    []byte
}

func (AllTypes) TableName() string { return "shop.all_types" }

// Nullable receives the all-NULL row.
type Nullable struct {
	ID  int64          `db:"id"`
	Ti  *int8          `db:"ti"`
	Biu sql.NullInt64  `db:"bi"`
	Vc  sql.NullString `db:"vc"`
	Dtm *time.Time     `db:"dtm"`
	Ts  sql.NullTime   `db:"ts"`
	J   *json.RawMessage
	St  []string `db:"st"`
}

func (Nullable) TableName() string { return "shop.all_types" }

// TestEveryTypeRoundTrip writes every type through MariaDB, the producer and
// NATS Streaming and checks the exact Go values a subscriber receives on
// insert, update and delete.
func TestEveryTypeRoundTrip(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		changes := make(chan client.Change[AllTypes], 10)
		nulls := make(chan client.Change[Nullable], 10)
		shanghai, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(t, e, "c-types", func(cfg *client.Config) { cfg.Location = shanghai })
		c2 := newClient(t, e, "c-nulls", nil)
		if _, err := client.Subscribe(c, "", "", func(ctx context.Context, ch client.Change[AllTypes]) error {
			changes <- ch
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Subscribe(c2, "", "", func(ctx context.Context, ch client.Change[Nullable]) error {
			nulls <- ch
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		conn, err := e.DB.DB(t).Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, stmt := range testenv.ReadSQLFile(t, "../binlog/testdata/all_types.sql") {
			if _, err := conn.ExecContext(context.Background(), stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		next := func() client.Change[AllTypes] {
			select {
			case ch := <-changes:
				return ch
			case <-time.After(30 * time.Second):
				t.Fatal("no change within 30s")
			}
			panic("unreachable")
		}

		ins := next()
		if ins.Type != client.Insert || ins.Before != nil || ins.After == nil || ins.DB != "shop" || ins.Table != "all_types" {
			t.Fatalf("insert change %+v", ins)
		}
		if ins.CommitTime.IsZero() || ins.Source.File == "" || ins.ID == "" {
			t.Errorf("insert lacks its source: %+v", ins.Source)
		}
		a := ins.After
		dtm6Want := time.Date(2026, 11, 21, 12, 34, 56, 123456000, shanghai)
		ts6Want := time.Date(2026, 11, 21, 4, 34, 56, 123456000, time.UTC)
		checks := []struct {
			name      string
			got, want any
		}{
			{"ti", a.Ti, int8(math.MinInt8)}, {"tiu", a.Tiu, uint8(math.MaxUint8)},
			{"si", a.Si, int16(math.MinInt16)}, {"siu", a.Siu, uint16(math.MaxUint16)},
			{"mi", a.Mi, int32(-8388608)}, {"miu", a.Miu, uint32(16777215)},
			{"i", a.I, math.MinInt32}, {"iu", a.Iu, uint32(math.MaxUint32)},
			{"bi", a.Bi, int64(math.MinInt64)}, {"biu", a.Biu, uint64(math.MaxUint64)},
			{"flag", a.Flag, true}, {"dec1", a.Dec1, "12.50"},
			{"dec2", a.Dec2.String(), "-12345678901234567890123456789012345.12345678901234567890123456789"},
			{"f", a.F, float32(1.5)}, {"d", a.D, -2.718281828459045},
			{"b1", a.B1, true}, {"b64", a.B64, uint64(math.MaxUint64)},
			{"c", a.C, "abc"}, {"vc", a.Vc, "日本語 😀 Ünïcødé \"quoted\" \\ back\nslash"},
			{"lt", a.Lt, "long"}, {"lat", a.Lat, "café €"},
			{"bin", a.Bin, []byte{0, 0xff, 1, 2}}, {"vbin", a.Vbin, []byte{0xde, 0xad, 0xbe, 0xef, 0}},
			{"mb", a.Mb, []byte("a")}, {"lb", len(a.Lb), 0},
			{"dt", a.Dt, time.Date(2026, 11, 21, 0, 0, 0, 0, shanghai)},
			{"tm", a.Tm, "-838:59:59"}, {"tm6", a.Tm6, 12*time.Hour + 34*time.Minute + 56*time.Second + 123456*time.Microsecond},
			{"yr", a.Yr, 2026},
			{"dtm", a.Dtm, time.Date(2026, 11, 21, 12, 34, 56, 0, shanghai)},
			{"dtm6", a.Dtm6.Equal(dtm6Want), true},
			{"ts", a.Ts.Equal(time.Date(2026, 11, 21, 4, 34, 56, 0, time.UTC)), true},
			{"ts6", a.Ts6 != nil && a.Ts6.Equal(ts6Want), true},
			{"e", a.E, "medium"}, {"st", a.St, []string{"red", "blue"}},
		}
		for _, c := range checks {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("column %s: got %#v, want %#v", c.name, c.got, c.want)
			}
		}
		var doc map[string]any
		if err := json.Unmarshal(a.J, &doc); err != nil || doc["c"].(map[string]any)["d"] != true {
			t.Errorf("column j: %s (%v)", a.J, err)
		}

		n := <-nulls
		if n.After.ID != 1 {
			t.Fatalf("first Nullable change is id %d", n.After.ID)
		}
		n = <-nulls
		if n.After.ID != 2 || n.After.Ti != nil || n.After.Biu.Valid || n.After.Vc.Valid || n.After.Dtm != nil || n.After.Ts.Valid || n.After.J != nil || n.After.St != nil {
			t.Errorf("NULL row decoded as %+v", n.After)
		}

		zero := next()
		if zero.After.ID != 2 {
			t.Fatalf("second change is id %d", zero.After.ID)
		}
		zero = next()
		if !zero.After.Dt.IsZero() || !zero.After.Dtm.IsZero() || !zero.After.Ts.IsZero() || zero.After.E != "small" || len(zero.After.St) != 0 {
			t.Errorf("zero-date row decoded as dt=%v dtm=%v ts=%v e=%q st=%v", zero.After.Dt, zero.After.Dtm, zero.After.Ts, zero.After.E, zero.After.St)
		}

		upd := next()
		if upd.Type != client.Update || upd.Before == nil || upd.After == nil {
			t.Fatalf("update change %+v", upd)
		}
		if upd.Before.Vc != a.Vc || upd.After.Vc != "updated" || upd.After.Dec1 != "0.05" ||
			!reflect.DeepEqual(upd.After.St, []string{"red", "green", "blue"}) || string(upd.After.J) != `"just a string"` ||
			!upd.After.Ts.Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("update decoded as before=%+v after=%+v", upd.Before, upd.After)
		}

		del := next()
		if del.Type != client.Delete || del.After != nil || del.Before == nil || del.Before.ID != 2 {
			t.Fatalf("delete change %+v", del)
		}
	})
}
