package decode

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Shanghai without relying on the system's zoneinfo

	"github.com/shopspring/decimal"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// golden loads the producer's golden envelopes for shop.all_types.
func golden(t *testing.T) []envelope.Envelope {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "binlog", "testdata", "all_types.golden.json"))
	if err != nil {
		t.Fatalf("reading the golden envelopes: %v", err)
	}
	var envs []envelope.Envelope
	if err := json.Unmarshal(data, &envs); err != nil {
		t.Fatalf("parsing the golden envelopes: %v", err)
	}
	if len(envs) != 6 {
		t.Fatalf("golden file has %d envelopes, want 6 (insert full, insert nulls, insert zero dates, update, delete, insert time extremes)", len(envs))
	}
	return envs
}

// testDeletedAt mimics gorm.DeletedAt: a NullTime whose Scan refuses
// strings.
type testDeletedAt sql.NullTime

func (n *testDeletedAt) Scan(v any) error { return (*sql.NullTime)(n).Scan(v) }

// level is an ENUM decoded through encoding.TextUnmarshaler.
type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "small":
		*l = 1
	case "medium":
		*l = 2
	default:
		return errors.New("unknown level " + string(b))
	}
	return nil
}

// allTypes holds every contract type in its most natural Go type.
type allTypes struct {
	ID   int64
	Ti   int8
	Tiu  uint8
	Si   int16
	Siu  uint16
	Mi   int32
	Miu  uint32
	I    int32
	Iu   uint32
	Bi   int64
	Biu  uint64
	Flag bool
	Dec1 string
	Dec2 string
	F    float32
	D    float64
	B1   bool
	B64  uint64
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
	Mb   string // a BLOB into a string: its bytes
	Lb   []byte
	J    json.RawMessage
	Dt   time.Time
	Tm   time.Duration
	Tm6  time.Duration
	Yr   int
	Dtm  time.Time
	Dtm6 time.Time
	Ts   time.Time
	Ts6  time.Time
	E    string
	St   []string
	G    []byte
}

type jsonDoc struct {
	A []any           `json:"a"`
	B *int            `json:"b"`
	C map[string]bool `json:"c"`
}

// altTypes decodes the same columns into other Go types.
type altTypes struct {
	Dec1 decimal.Decimal
	Dec2 decimal.Decimal
	Bi   string
	Biu  string
	F    float64
	Flag int
	Tm   string
	Tm6  string
	Yr   int16
	St   string
	E    level
	J    map[string]any
	Bin  string
	Lat  []byte
	Dtm  string
	Ts   *time.Time
	Dtm6 sql.NullTime
	Ts6  testDeletedAt
	Vbin [5]byte
}

type jsonStruct struct {
	J jsonDoc
}

// nullable decodes the same columns into pointers and sql.Null types.
type nullable struct {
	ID   sql.NullInt64
	Ti   *int8
	Tiu  sql.NullByte
	Si   sql.NullInt16
	Mi   int32
	I    sql.NullInt32
	Bi   sql.NullInt64
	Biu  *uint64
	Flag sql.NullBool
	Dec1 sql.NullString
	Dec2 *decimal.Decimal
	F    sql.NullFloat64
	C    sql.Null[string]
	Vc   *string
	Bin  []byte
	G    *[]byte
	J    json.RawMessage
	Dt   *time.Time
	Dtm  sql.NullTime
	Ts   testDeletedAt
	Tm   *time.Duration
	Yr   sql.Null[int]
	E    *string
	St   []string
}

func mustDecoder(t *testing.T, typ reflect.Type, opts Options) *Decoder {
	t.Helper()
	d, err := New(typ, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", typ, err)
	}
	return d
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compacting %q: %v", raw, err)
	}
	return b.String()
}

func TestDecodeGoldenAllTypes(t *testing.T) {
	envs := golden(t)
	ins := envs[0]
	d := mustDecoder(t, reflect.TypeFor[allTypes](), Options{Strict: true})
	var r allTypes
	if err := d.Decode(&r, "shop.all_types", ins.After, ins.Binary); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	check(t, "ID", r.ID, 1)
	check(t, "Ti", r.Ti, math.MinInt8)
	check(t, "Tiu", r.Tiu, math.MaxUint8)
	check(t, "Si", r.Si, math.MinInt16)
	check(t, "Siu", r.Siu, math.MaxUint16)
	check(t, "Mi", r.Mi, -8388608)
	check(t, "Miu", r.Miu, 16777215)
	check(t, "I", r.I, math.MinInt32)
	check(t, "Iu", r.Iu, math.MaxUint32)
	check(t, "Bi", r.Bi, math.MinInt64)
	check(t, "Biu", r.Biu, uint64(math.MaxUint64))
	check(t, "Flag", r.Flag, true)
	check(t, "Dec1", r.Dec1, "12.50")
	check(t, "Dec2", r.Dec2, "-12345678901234567890123456789012345.123456789012345678901234567890")
	check(t, "F", r.F, float32(1.5))
	check(t, "D", r.D, -2.718281828459045)
	check(t, "B1", r.B1, true)
	check(t, "B64", r.B64, uint64(math.MaxUint64))
	check(t, "C", r.C, "abc")
	check(t, "Vc", r.Vc, "日本語 😀 Ünïcødé \"quoted\" \\ back\nslash")
	check(t, "Tt", r.Tt, "tiny")
	check(t, "T", r.T, "text")
	check(t, "Mt", r.Mt, "medium")
	check(t, "Lt", r.Lt, "long")
	check(t, "Lat", r.Lat, "café €")
	check(t, "Bin", string(r.Bin), "\x00\xff\x01\x02")
	check(t, "Vbin", string(r.Vbin), "\xde\xad\xbe\xef\x00")
	check(t, "Tb", string(r.Tb), "\x00")
	check(t, "Bl", string(r.Bl), "\x00\x01\x02\xff")
	check(t, "Mb", r.Mb, "a")
	if r.Lb == nil || len(r.Lb) != 0 {
		t.Errorf("Lb = %#v, want an empty non-nil slice (empty LONGBLOB, not NULL)", r.Lb)
	}
	check(t, "J", compact(t, r.J), `{"a":[1,2.5,"x"],"b":null,"c":{"d":true}}`)
	check(t, "Dt", r.Dt, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	check(t, "Tm", r.Tm, -(838*time.Hour + 59*time.Minute + 59*time.Second))
	check(t, "Tm6", r.Tm6, 12*time.Hour+34*time.Minute+56*time.Second+123456*time.Microsecond)
	check(t, "Yr", r.Yr, 2026)
	check(t, "Dtm", r.Dtm, time.Date(2026, 11, 21, 12, 34, 56, 0, time.UTC))
	check(t, "Dtm6", r.Dtm6, time.Date(2026, 11, 21, 12, 34, 56, 123456000, time.UTC))
	check(t, "Ts", r.Ts, time.Date(2026, 11, 21, 4, 34, 56, 0, time.UTC))
	check(t, "Ts6", r.Ts6, time.Date(2026, 11, 21, 4, 34, 56, 123456000, time.UTC))
	check(t, "E", r.E, "medium")
	if !reflect.DeepEqual(r.St, []string{"red", "blue"}) {
		t.Errorf("St = %#v, want [red blue]", r.St)
	}
	check(t, "G", string(r.G), "\x00\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x00\x40")

	// The update's after image changes some values; the before image equals the insert.
	upd := envs[3]
	var before, after allTypes
	if err := d.Decode(&before, "shop.all_types", upd.Before, upd.Binary); err != nil {
		t.Fatalf("Decode before: %v", err)
	}
	if !reflect.DeepEqual(before, r) {
		t.Errorf("update before image = %+v, want the inserted row %+v", before, r)
	}
	if err := d.Decode(&after, "shop.all_types", upd.After, upd.Binary); err != nil {
		t.Fatalf("Decode after: %v", err)
	}
	check(t, "after.Dec1", after.Dec1, "0.05")
	check(t, "after.Vc", after.Vc, "updated")
	check(t, "after.J", string(after.J), `"just a string"`)
	check(t, "after.Ts", after.Ts, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	if !reflect.DeepEqual(after.St, []string{"red", "green", "blue"}) {
		t.Errorf("after.St = %#v", after.St)
	}
}

func TestDecodeGoldenAltTypes(t *testing.T) {
	ins := golden(t)[0]
	d := mustDecoder(t, reflect.TypeFor[altTypes](), Options{})
	var r altTypes
	if err := d.Decode(&r, "shop.all_types", ins.After, ins.Binary); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !r.Dec1.Equal(decimal.RequireFromString("12.50")) || r.Dec1.String() != "12.5" || r.Dec1.Exponent() != -2 {
		t.Errorf("Dec1 = %s (exp %d), want 12.50 exactly", r.Dec1, r.Dec1.Exponent())
	}
	if want := decimal.RequireFromString("-12345678901234567890123456789012345.123456789012345678901234567890"); !r.Dec2.Equal(want) {
		t.Errorf("Dec2 = %s, want %s", r.Dec2, want)
	}
	check(t, "Bi", r.Bi, "-9223372036854775808")
	check(t, "Biu", r.Biu, "18446744073709551615")
	check(t, "F", r.F, 1.5)
	check(t, "Flag", r.Flag, 1)
	check(t, "Tm", r.Tm, "-838:59:59")
	check(t, "Tm6", r.Tm6, "12:34:56.123456")
	check(t, "Yr", r.Yr, 2026)
	check(t, "St", r.St, "red,blue")
	check(t, "E", r.E, level(2))
	want := map[string]any{"a": []any{1.0, 2.5, "x"}, "b": nil, "c": map[string]any{"d": true}}
	if !reflect.DeepEqual(r.J, want) {
		t.Errorf("J = %#v, want %#v", r.J, want)
	}
	check(t, "Bin", r.Bin, "\x00\xff\x01\x02")
	check(t, "Lat", string(r.Lat), "café €") // a text column into []byte: its UTF-8 bytes
	check(t, "Dtm", r.Dtm, "2026-11-21T12:34:56")
	if r.Ts == nil || !r.Ts.Equal(time.Date(2026, 11, 21, 4, 34, 56, 0, time.UTC)) {
		t.Errorf("Ts = %v", r.Ts)
	}
	check(t, "Dtm6", r.Dtm6, sql.NullTime{Time: time.Date(2026, 11, 21, 12, 34, 56, 123456000, time.UTC), Valid: true})
	check(t, "Ts6", r.Ts6, testDeletedAt{Time: time.Date(2026, 11, 21, 4, 34, 56, 123456000, time.UTC), Valid: true})
	check(t, "Vbin", r.Vbin, [5]byte{0xde, 0xad, 0xbe, 0xef, 0})

	// The NULL row zeroes every field, including decimal.Decimal (whose Scan
	// refuses nil) and a TextUnmarshaler-only ENUM type.
	nulls := r
	if err := d.Decode(&nulls, "shop.all_types", golden(t)[1].After, ins.Binary); err != nil {
		t.Fatalf("Decode NULL row: %v", err)
	}
	if !reflect.DeepEqual(nulls, altTypes{}) {
		t.Errorf("NULL row = %+v, want the zero value", nulls)
	}

	var s jsonStruct
	if err := mustDecoder(t, reflect.TypeFor[jsonStruct](), Options{}).Decode(&s, "shop.all_types", ins.After, ins.Binary); err != nil {
		t.Fatalf("Decode into a struct for the JSON column: %v", err)
	}
	if !reflect.DeepEqual(s.J, jsonDoc{A: []any{1.0, 2.5, "x"}, C: map[string]bool{"d": true}}) {
		t.Errorf("J struct = %#v", s.J)
	}

	// A JSON column holding a JSON string is not unwrapped: into a map it does not fit.
	upd := golden(t)[3]
	var a altTypes
	err := d.Decode(&a, "shop.all_types", upd.After, upd.Binary)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Column != "j" || fe.Field != "altTypes.J" {
		t.Fatalf("JSON string into map: err = %v, want a FieldError for column j", err)
	}
}

func TestDecodeGoldenLocation(t *testing.T) {
	ins := golden(t)[0]
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatalf("loading Asia/Shanghai: %v", err)
	}
	d := mustDecoder(t, reflect.TypeFor[allTypes](), Options{Location: sh})
	var r allTypes
	if err := d.Decode(&r, "shop.all_types", ins.After, ins.Binary); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	// DATETIME and DATE: wall clock in Shanghai.
	check(t, "Dtm6", r.Dtm6, time.Date(2026, 11, 21, 12, 34, 56, 123456000, sh))
	check(t, "Dt", r.Dt, time.Date(2026, 11, 21, 0, 0, 0, 0, sh))
	// TIMESTAMP: the same instant as in UTC, shown in Shanghai.
	check(t, "Ts6", r.Ts6, time.Date(2026, 11, 21, 12, 34, 56, 123456000, sh))
	if !r.Ts6.Equal(time.Date(2026, 11, 21, 4, 34, 56, 123456000, time.UTC)) || r.Ts6.Location() != sh {
		t.Errorf("Ts6 = %v, want the instant 04:34:56.123456Z in Asia/Shanghai", r.Ts6)
	}
	// The golden row stores the same moment as DATETIME 12:34:56 (Shanghai wall
	// clock) and TIMESTAMP 04:34:56Z: equal instants only in Shanghai.
	if !r.Dtm.Equal(r.Ts) {
		t.Errorf("in Asia/Shanghai DATETIME %v and TIMESTAMP %v should be the same instant", r.Dtm, r.Ts)
	}
	var u allTypes
	if err := mustDecoder(t, reflect.TypeFor[allTypes](), Options{}).Decode(&u, "shop.all_types", ins.After, ins.Binary); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if u.Dtm.Equal(u.Ts) {
		t.Errorf("in UTC DATETIME %v and TIMESTAMP %v should differ by 8h", u.Dtm, u.Ts)
	}
	if !u.Ts6.Equal(r.Ts6) {
		t.Errorf("TIMESTAMP instant depends on Location: %v vs %v", u.Ts6, r.Ts6)
	}
}

func TestDecodeGoldenNulls(t *testing.T) {
	envs := golden(t)
	d := mustDecoder(t, reflect.TypeFor[nullable](), Options{})

	var r nullable
	if err := d.Decode(&r, "shop.all_types", envs[0].After, envs[0].Binary); err != nil {
		t.Fatalf("Decode full row: %v", err)
	}
	check(t, "ID", r.ID, sql.NullInt64{Int64: 1, Valid: true})
	if r.Ti == nil || *r.Ti != -128 {
		t.Errorf("Ti = %v, want -128", r.Ti)
	}
	check(t, "Tiu", r.Tiu, sql.NullByte{Byte: 255, Valid: true})
	check(t, "Si", r.Si, sql.NullInt16{Int16: -32768, Valid: true})
	check(t, "I", r.I, sql.NullInt32{Int32: math.MinInt32, Valid: true})
	check(t, "Bi", r.Bi, sql.NullInt64{Int64: math.MinInt64, Valid: true})
	if r.Biu == nil || *r.Biu != math.MaxUint64 {
		t.Errorf("Biu = %v", r.Biu)
	}
	check(t, "Flag", r.Flag, sql.NullBool{Bool: true, Valid: true})
	check(t, "Dec1", r.Dec1, sql.NullString{String: "12.50", Valid: true})
	if r.Dec2 == nil || r.Dec2.String() != "-12345678901234567890123456789012345.12345678901234567890123456789" {
		t.Errorf("Dec2 = %v", r.Dec2)
	}
	check(t, "F", r.F, sql.NullFloat64{Float64: 1.5, Valid: true})
	check(t, "C", r.C, sql.Null[string]{V: "abc", Valid: true})
	check(t, "Dtm", r.Dtm, sql.NullTime{Time: time.Date(2026, 11, 21, 12, 34, 56, 0, time.UTC), Valid: true})
	check(t, "Ts", r.Ts, testDeletedAt{Time: time.Date(2026, 11, 21, 4, 34, 56, 0, time.UTC), Valid: true})
	if r.Tm == nil || *r.Tm != -(838*time.Hour+59*time.Minute+59*time.Second) {
		t.Errorf("Tm = %v", r.Tm)
	}
	check(t, "Yr", r.Yr, sql.Null[int]{V: 2026, Valid: true})
	if r.G == nil || len(*r.G) != 25 {
		t.Errorf("G = %v, want 25 WKB bytes", r.G)
	}

	// The NULL row resets every field decoded above (the same struct is reused).
	for _, img := range []map[string]json.RawMessage{envs[1].After, envs[4].Before} {
		r.Mi = 42
		if err := d.Decode(&r, "shop.all_types", img, envs[1].Binary); err != nil {
			t.Fatalf("Decode NULL row: %v", err)
		}
		want := nullable{ID: sql.NullInt64{Int64: 2, Valid: true}}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("NULL row = %+v\nwant %+v", r, want)
		}
	}
}

func TestDecodeGoldenZeroDates(t *testing.T) {
	zr := golden(t)[2]
	type zero struct {
		Dt   time.Time
		Dtm  time.Time
		Dtm6 sql.NullTime
		Ts   *time.Time
		Ts6  testDeletedAt
		Yr   int
		Bi   int64
		Biu  uint64
		Vc   string
		E    string
		J    []any
		St   []string
	}
	d := mustDecoder(t, reflect.TypeFor[zero](), Options{})
	now := time.Now()
	r := zero{Dt: now, Dtm: now, Dtm6: sql.NullTime{Time: now, Valid: true}, Ts: &now,
		Ts6: testDeletedAt{Time: now, Valid: true}, Yr: 1, Vc: "x"}
	if err := d.Decode(&r, "shop.all_types", zr.After, zr.Binary); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := zero{E: "small", J: []any{}, St: []string{}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("zero-date row = %+v\nwant %+v", r, want)
	}
}

func TestDecodeMapping(t *testing.T) {
	type Model struct {
		ID        uint
		CreatedAt time.Time
		DeletedAt testDeletedAt
	}
	type Extra struct{ Note string }
	type Author struct{ Name string }
	type mapped struct {
		Model
		*Extra
		ByDB        string `db:"db_col,omitempty"`
		ByGorm      string `gorm:"column:gorm_col;type:varchar(10)"`
		ByJSON      string `json:"json_col,omitempty"`
		HoleId      int
		ImageURL    string
		UserIDs     string
		Skipped     string `db:"-"`
		SkippedGorm string `gorm:"-"`
		SkippedJSON string `json:"-"`
		DBWins      string `db:"db_wins" gorm:"column:gorm_loses" json:"json_loses"`
		Author      Author `gorm:"embedded;embeddedPrefix:author_"`
		unexported  string
	}
	d := mustDecoder(t, reflect.TypeFor[mapped](), Options{Strict: true})
	img := map[string]json.RawMessage{
		"ID": json.RawMessage(`7`), "created_at": json.RawMessage(`"2026-11-21T12:34:56"`),
		"deleted_at": json.RawMessage(`"2026-11-22T00:00:00"`), "note": json.RawMessage(`"n"`),
		"DB_COL": json.RawMessage(`"db"`), "gorm_col": json.RawMessage(`"gorm"`),
		"json_col": json.RawMessage(`"json"`), "hole_id": json.RawMessage(`3`),
		"image_url": json.RawMessage(`"u"`), "user_ids": json.RawMessage(`"1,2"`),
		"db_wins": json.RawMessage(`"w"`), "author_name": json.RawMessage(`"ann"`),
	}
	var m mapped
	if err := d.Decode(&m, "shop.mapped", img, []string{}); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := mapped{
		Model: Model{ID: 7, CreatedAt: time.Date(2026, 11, 21, 12, 34, 56, 0, time.UTC),
			DeletedAt: testDeletedAt{Time: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), Valid: true}},
		Extra: &Extra{Note: "n"},
		ByDB:  "db", ByGorm: "gorm", ByJSON: "json", HoleId: 3, ImageURL: "u", UserIDs: "1,2", DBWins: "w",
		Author: Author{Name: "ann"},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("mapped = %+v\nwant %+v", m, want)
	}

	// Skipped fields, unexported fields and losing tags map to nothing: Strict rejects their columns.
	for _, col := range []string{"skipped", "skipped_gorm", "skipped_json", "unexported", "gorm_loses", "json_loses", "by_db", "name"} {
		err := d.Decode(&m, "shop.mapped", map[string]json.RawMessage{col: json.RawMessage(`"x"`)}, nil)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Column != col || fe.Field != "" ||
			!strings.Contains(err.Error(), "shop.mapped") || !strings.Contains(err.Error(), `"`+col+`"`) {
			t.Errorf("Strict, column %q: err = %v, want an unmapped-column error naming table and column", col, err)
		}
	}

	// An outer field shadows an embedded one of the same column, as in Go.
	type shadow struct {
		Model
		ID string
	}
	var s shadow
	if err := mustDecoder(t, reflect.TypeFor[shadow](), Options{}).Decode(&s, "t.s",
		map[string]json.RawMessage{"id": json.RawMessage(`"outer"`)}, nil); err != nil {
		t.Fatalf("Decode shadow: %v", err)
	}
	if s.ID != "outer" || s.Model.ID != 0 {
		t.Errorf("shadow = %+v, want the outer ID set", s)
	}
}

func TestDecodeStrictAndAbsent(t *testing.T) {
	type row struct {
		ID   int
		Name string
	}
	img := map[string]json.RawMessage{"id": json.RawMessage(`1`), "extra": json.RawMessage(`"x"`)}
	r := row{Name: "kept"}
	if err := mustDecoder(t, reflect.TypeFor[row](), Options{}).Decode(&r, "shop.row", img, nil); err != nil {
		t.Fatalf("non-strict Decode with an unmapped column: %v", err)
	}
	if r != (row{ID: 1, Name: "kept"}) {
		t.Errorf("row = %+v, want ID 1 and the absent column's field untouched", r)
	}
	err := mustDecoder(t, reflect.TypeFor[row](), Options{Strict: true}).Decode(&r, "shop.row", img, nil)
	if err == nil || !strings.Contains(err.Error(), "shop.row") || !strings.Contains(err.Error(), `"extra"`) {
		t.Errorf("strict Decode with an unmapped column: err = %v, want one naming shop.row and \"extra\"", err)
	}
}

func TestDecodeDuplicateColumn(t *testing.T) {
	type dup struct {
		Alpha string `db:"x"`
		Beta  string `gorm:"column:X"`
	}
	_, err := New(reflect.TypeFor[dup](), Options{})
	if err == nil || !strings.Contains(err.Error(), "dup.Alpha") || !strings.Contains(err.Error(), "dup.Beta") {
		t.Fatalf("duplicate column: err = %v, want one naming dup.Alpha and dup.Beta", err)
	}
	type snake struct {
		UserID string
		UserId string
	}
	if _, err := New(reflect.TypeFor[snake](), Options{}); err == nil || !strings.Contains(err.Error(), `"user_id"`) {
		t.Fatalf("UserID and UserId both snake to user_id: err = %v", err)
	}
}

func TestDecodeNotAStruct(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[*allTypes](), reflect.TypeFor[int](), nil} {
		if _, err := New(typ, Options{}); err == nil {
			t.Errorf("New(%v) succeeded, want an error", typ)
		} else if typ != nil && !strings.Contains(err.Error(), typ.String()) {
			t.Errorf("New(%v) error %q does not name the type", typ, err)
		}
	}
	d := mustDecoder(t, reflect.TypeFor[allTypes](), Options{})
	for _, dst := range []any{nil, allTypes{}, (*allTypes)(nil), &altTypes{}} {
		if err := d.Decode(dst, "shop.all_types", nil, nil); err == nil {
			t.Errorf("Decode(%T) succeeded, want an error", dst)
		}
	}
}

func TestDecodeFieldErrors(t *testing.T) {
	type Order struct {
		Qty    int8
		N      uint
		Count  int
		Ok     bool
		Data   []byte
		At     time.Time
		Dur    time.Duration
		Price  decimal.Decimal
		Tags   []string
		Small  float32
		Exact  int64
		Doc    map[string]any
		Bits   uint64
		Handle func()
	}
	d := mustDecoder(t, reflect.TypeFor[Order](), Options{})
	cases := []struct {
		col, raw, field, typ, msg string
		binary                    []string
	}{
		{"qty", `300`, "Order.Qty", "int8", "value 300 overflows int8", nil},
		{"qty", `-129`, "Order.Qty", "int8", "overflows int8", nil},
		{"qty", `128`, "Order.Qty", "int8", "overflows int8", nil},
		{"n", `-0.5`, "Order.N", "uint", "not a whole number", nil},
		{"n", `-1`, "Order.N", "uint", "negative", nil},
		{"count", `"abc"`, "Order.Count", "int", "not a number", nil},
		{"count", `1.5`, "Order.Count", "int", "not a whole number", nil},
		{"count", `"12.50"`, "Order.Count", "int", "not a whole number", nil},
		{"count", `1e3`, "Order.Count", "int", "not a whole number", nil},
		{"count", `true`, "Order.Count", "int", "boolean", nil},
		{"count", `99999999999999999999`, "Order.Count", "int", "overflows", nil},
		{"bits", `18446744073709551616`, "Order.Bits", "uint64", "overflows uint64", nil},
		{"ok", `"true"`, "Order.Ok", "bool", "string", nil},
		{"ok", `2`, "Order.Ok", "bool", "0 or 1", nil},
		{"data", `"not base64!"`, "Order.Data", "[]uint8", "base64", nil},
		{"data", `"not base64!"`, "Order.Data", "[]uint8", "base64", []string{"data"}},
		{"at", `"2026-13-01T00:00:00"`, "Order.At", "time.Time", "DATETIME", nil},
		{"at", `"2026-02-30"`, "Order.At", "time.Time", "no such day", nil},
		{"at", `"21/11/2026"`, "Order.At", "time.Time", "DATE", nil},
		{"at", `"2026-11-21T12:34:56+08:00"`, "Order.At", "time.Time", "trailing", nil},
		{"at", `20261121`, "Order.At", "time.Time", "number", nil},
		{"dur", `"12:60:00"`, "Order.Dur", "time.Duration", "TIME", nil},
		{"price", `"12,50"`, "Order.Price", "decimal.Decimal", "12,50", nil},
		{"tags", `7`, "Order.Tags", "[]string", "number", nil},
		{"tags", `[1,2]`, "Order.Tags", "[]string", "array of strings", nil},
		{"small", `1e39`, "Order.Small", "float32", "overflows float32", nil},
		{"small", `"NaN"`, "Order.Small", "float32", "not a number", nil},
		{"exact", `"1x"`, "Order.Exact", "int64", "not a number", nil},
		{"doc", `"just a string"`, "Order.Doc", "map[string]interface {}", "unmarshal", nil},
		{"handle", `1`, "Order.Handle", "func()", "db:\"-\"", nil},
	}
	for _, c := range cases {
		var o Order
		err := d.Decode(&o, "shop.orders", map[string]json.RawMessage{c.col: json.RawMessage(c.raw)}, c.binary)
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s=%s: err = %v, want a *FieldError", c.col, c.raw, err)
			continue
		}
		msg := err.Error()
		prefix := `table shop.orders column "` + c.col + `" -> field ` + c.field + " (" + c.typ + "): "
		if fe.Table != "shop.orders" || fe.Column != c.col || fe.Field != c.field ||
			!strings.HasPrefix(msg, prefix) || !strings.Contains(msg, c.msg) {
			t.Errorf("%s=%s: error %q, want prefix %q and %q", c.col, c.raw, msg, prefix, c.msg)
		}
		if !reflect.DeepEqual(o, Order{}) {
			t.Errorf("%s=%s: failed decode changed the struct: %+v", c.col, c.raw, o)
		}
	}

	// The example of the FieldError documentation, verbatim.
	var o Order
	err := d.Decode(&o, "shop.orders", map[string]json.RawMessage{"qty": json.RawMessage(`300`)}, nil)
	check(t, "message", err.Error(), `table shop.orders column "qty" -> field Order.Qty (int8): value 300 overflows int8`)

	// Several bad columns: the first field in declaration order is reported, every time.
	img := map[string]json.RawMessage{"qty": json.RawMessage(`300`), "n": json.RawMessage(`-1`),
		"count": json.RawMessage(`1.5`), "ok": json.RawMessage(`7`), "exact": json.RawMessage(`5`)}
	for i := 0; i < 20; i++ {
		var o Order
		err := d.Decode(&o, "shop.orders", img, nil)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Column != "qty" {
			t.Fatalf("several errors: got %v, want the one of column qty", err)
		}
		if o.Exact != 5 {
			t.Fatalf("several errors: the good column was not decoded: %+v", o)
		}
	}
}

func TestDecodeConversions(t *testing.T) {
	type named int16
	type conv struct {
		I64     int64
		U64     uint64
		Named   named
		F64     float64
		B       bool
		S       string
		Bytes   []byte
		Strs    []string
		Any     any
		Dur     time.Duration
		Raw     json.RawMessage
		PDec    *decimal.Decimal
		NS      sql.NullString
		NI      sql.NullInt64
		Arr     [2]byte
		Uintptr uintptr
	}
	d := mustDecoder(t, reflect.TypeFor[conv](), Options{})
	cases := []struct {
		col, raw string
		binary   []string
		want     any
	}{
		{"i64", `"12"`, nil, int64(12)},       // DECIMAL(10,0) into an int
		{"i64", `"-12.000"`, nil, int64(-12)}, // an exact integer with a zero fraction
		{"i64", `-9223372036854775808`, nil, int64(math.MinInt64)},
		{"u64", `18446744073709551615`, nil, uint64(math.MaxUint64)},
		{"u64", `"-0"`, nil, uint64(0)},
		{"named", `-7`, nil, named(-7)},
		{"f64", `"12.50"`, nil, 12.5},
		{"f64", `1e-3`, nil, 0.001},
		{"b", `0`, nil, false},
		{"b", `true`, nil, true},
		{"s", `9223372036854775807123`, nil, "9223372036854775807123"},
		{"s", `["a","b"]`, nil, "a,b"},
		{"s", `{"k": [1, 2]}`, nil, `{"k": [1, 2]}`},
		{"s", `"AP8="`, nil, "AP8="},                    // binary unknown: text as is
		{"s", `"AP8="`, []string{"S"}, "\x00\xff"},      // listed (case-insensitively) as binary
		{"s", `"a\u00e9\n"`, nil, "a\u00e9\n"},          // escapes
		{"bytes", `"AP8="`, []string{}, []byte("AP8=")}, // a text column: its bytes
		{"bytes", `"AP8="`, nil, []byte{0, 0xff}},       // unknown: base64
		{"bytes", `{"a":1}`, nil, []byte(`{"a":1}`)},
		{"strs", `"a,b,c"`, nil, []string{"a", "b", "c"}},
		{"strs", `""`, nil, []string{}},
		{"any", `{"a":[1]}`, nil, map[string]any{"a": []any{1.0}}},
		{"any", `"s"`, nil, "s"},
		{"dur", `"838:59:59.5"`, nil, 838*time.Hour + 59*time.Minute + 59*time.Second + 500*time.Millisecond},
		{"dur", `"-00:00:01.000001"`, nil, -(time.Second + time.Microsecond)},
		{"dur", `1500`, nil, 1500 * time.Nanosecond},
		{"raw", `[1, "x"]`, nil, json.RawMessage(`[1, "x"]`)},
		{"ns", `"x"`, nil, sql.NullString{String: "x", Valid: true}},
		{"ni", `"42"`, nil, sql.NullInt64{Int64: 42, Valid: true}},
		{"ni", `null`, nil, sql.NullInt64{}},
		{"arr", `"AP8="`, []string{"arr"}, [2]byte{0, 0xff}},
		{"uintptr", `5`, nil, uintptr(5)},
	}
	for _, c := range cases {
		var v conv
		if err := d.Decode(&v, "t.c", map[string]json.RawMessage{c.col: json.RawMessage(c.raw)}, c.binary); err != nil {
			t.Errorf("%s=%s: %v", c.col, c.raw, err)
			continue
		}
		f := reflect.ValueOf(v).FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, c.col) })
		if got := f.Interface(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s=%s (binary %v): got %#v, want %#v", c.col, c.raw, c.binary, got, c.want)
		}
	}

	// Pointer to decimal from a number and from a string; exact.
	for raw, want := range map[string]string{`1.25`: "1.25", `"0.05"`: "0.05", `18446744073709551615`: "18446744073709551615"} {
		var v conv
		if err := d.Decode(&v, "t.c", map[string]json.RawMessage{"p_dec": json.RawMessage(raw)}, nil); err != nil {
			t.Fatalf("p_dec=%s: %v", raw, err)
		}
		if v.PDec == nil || v.PDec.String() != want {
			t.Errorf("p_dec=%s: got %v, want %s", raw, v.PDec, want)
		}
	}
}

func TestTableName(t *testing.T) {
	type HoleComment struct{ ID int } // no TableName method
	check(t, "HoleComment", TableName(reflect.TypeFor[HoleComment]()), "hole_comment")
	check(t, "*HoleComment", TableName(reflect.TypeFor[*HoleComment]()), "hole_comment")
	check(t, "value receiver", TableName(reflect.TypeFor[valueNamed]()), "shop.value_named")
	check(t, "pointer receiver", TableName(reflect.TypeFor[ptrNamed]()), "ptr_named")
	check(t, "pointer receiver via pointer", TableName(reflect.TypeFor[*ptrNamed]()), "ptr_named")
	check(t, "nil", TableName(nil), "")
}

type valueNamed struct{}

func (valueNamed) TableName() string { return "shop.value_named" }

type ptrNamed struct{ name string }

func (p *ptrNamed) TableName() string { return "ptr_named" + p.name }

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"ID": "id", "HoleId": "hole_id", "CreatedAt": "created_at", "ImageURL": "image_url", "UserIDs": "user_ids",
		"HoleComment": "hole_comment", "B64": "b64", "Dtm6": "dtm6", "OwnerEmail": "owner_email", "IsDeleted": "is_deleted",
		"HTTPServer": "http_server", "APIKey": "api_key", "UUID": "uuid", "JSONData": "json_data", "already_snake": "already_snake",
		"A": "a", "": "", "ThumbupNum": "thumbup_num", "CreatedIp": "created_ip", "UTF8Name": "utf8_name",
	} {
		check(t, "SnakeCase("+in+")", SnakeCase(in), want)
	}
}

// BenchmarkDecode decodes a typical 10-column row.
func BenchmarkDecode(b *testing.B) {
	type Order struct {
		ID        int64
		UserID    uint64
		Status    string
		Total     decimal.Decimal
		Qty       int32
		Paid      bool
		Note      string
		Payload   []byte
		CreatedAt time.Time
		UpdatedAt time.Time
	}
	var env envelope.Envelope
	msg := `{"v":1,"db":"shop","table":"orders","type":"insert","pk":["id"],"binary":["payload"],"after":{` +
		`"id":7,"user_id":18446744073709551615,"status":"paid","total":"12.50","qty":3,"paid":1,` +
		`"note":"leave at the door","payload":"AP8BAg==","created_at":"2026-11-21T12:34:56.123456",` +
		`"updated_at":"2026-11-21T04:34:56.123456Z"}}`
	if err := json.Unmarshal([]byte(msg), &env); err != nil {
		b.Fatal(err)
	}
	d, err := New(reflect.TypeFor[Order](), Options{})
	if err != nil {
		b.Fatal(err)
	}
	var o Order
	if err := d.Decode(&o, "shop.orders", env.After, env.Binary); err != nil {
		b.Fatal(err)
	}
	if o.UserID != math.MaxUint64 || o.Total.String() != "12.5" || string(o.Payload) != "\x00\xff\x01\x02" {
		b.Fatalf("decoded %+v", o)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Decode(&o, "shop.orders", env.After, env.Binary); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeConcurrent(t *testing.T) {
	ins := golden(t)[0]
	d := mustDecoder(t, reflect.TypeFor[allTypes](), Options{})
	var want allTypes
	if err := d.Decode(&want, "shop.all_types", ins.After, ins.Binary); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				var r allTypes
				if err := d.Decode(&r, "shop.all_types", ins.After, ins.Binary); err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(r, want) {
					errs <- errors.New("concurrent decode differs")
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestDecodeGoldenTimeExtremes: DATETIME before 1970 and at year 1000,
// TIMESTAMP at both ends of its range, DATE 9999-12-31.
func TestDecodeGoldenTimeExtremes(t *testing.T) {
	envs := golden(t)
	type row struct {
		Dtm  time.Time  `db:"dtm"`
		Dtm6 time.Time  `db:"dtm6"`
		Ts   time.Time  `db:"ts"`
		Ts6  *time.Time `db:"ts6"`
		Dt   time.Time  `db:"dt"`
	}
	d, err := New(reflect.TypeFor[row](), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var r row
	if err := d.Decode(&r, "shop.all_types", envs[5].After, envs[5].Binary); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]time.Time{
		"dtm":  {r.Dtm, time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"dtm6": {r.Dtm6, time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC)},
		"ts":   {r.Ts, time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)},
		"ts6":  {*r.Ts6, time.Date(2038, 1, 19, 3, 14, 7, 999999000, time.UTC)},
		"dt":   {r.Dt, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)},
	}
	for col, v := range want {
		if !v[0].Equal(v[1]) {
			t.Errorf("%s = %v, want %v", col, v[0], v[1])
		}
	}
}
