package binlog

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/position"
)

// mysqlCompressedPayload is a real MySQL 8.0.27 zstd transaction payload
// (go-mysql v1.16's replication tests carry it): BEGIN, then an insert,
// an update and a delete, each with its table map, then XID.
var mysqlCompressedPayload = []byte{
	0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0xbc, 0x0a,
	0x00, 0xf6, 0x13, 0x44, 0x35, 0x60, 0x45, 0xd3,
	0x1c, 0x00, 0x92, 0x80, 0xa2, 0x43, 0x5d, 0x92,
	0xe0, 0x70, 0x43, 0xc5, 0x30, 0x0c, 0x12, 0x9c,
	0xdf, 0xcd, 0xfa, 0x0d, 0x1a, 0x06, 0x11, 0x11,
	0x91, 0x05, 0x79, 0x83, 0x3e, 0x4a, 0x41, 0xda,
	0xbb, 0xb5, 0x6e, 0xd4, 0xb7, 0xb0, 0x36, 0x45,
	0x98, 0x23, 0x74, 0x0d, 0x6b, 0x3c, 0xfa, 0xde,
	0x24, 0x05, 0x37, 0x00, 0x34, 0x00, 0x36, 0x00,
	0xec, 0x97, 0x4b, 0xfe, 0x33, 0x04, 0x9c, 0x27,
	0xeb, 0x41, 0xe2, 0x10, 0x69, 0x78, 0x45, 0xd9,
	0x6a, 0x52, 0x41, 0x91, 0xa0, 0x28, 0x6b, 0xa9,
	0x50, 0x50, 0xe8, 0xaf, 0x83, 0x5f, 0x87, 0x1c,
	0xc2, 0xa8, 0x15, 0xd5, 0x34, 0xfe, 0x3f, 0x72,
	0xf1, 0x07, 0xbb, 0xc2, 0xef, 0x78, 0xc1, 0x07,
	0x0e, 0xf1, 0x9f, 0x35, 0x9c, 0x27, 0x2b, 0x52,
	0x8c, 0xf4, 0x49, 0x67, 0xfb, 0x3e, 0x7a, 0x2d,
	0xec, 0x5a, 0xa5, 0x8d, 0xd6, 0x81, 0x53, 0xfe,
	0xcd, 0xe2, 0x7f, 0xfb, 0xd5, 0xbc, 0x35, 0x00,
	0xff, 0xd9, 0x02, 0xce, 0x93, 0xf5, 0x2b, 0xd3,
	0xb4, 0x33, 0xd6, 0x38, 0xa3, 0x19, 0x64, 0x9a,
	0xe6, 0x5d, 0x75, 0x9d, 0x58, 0x6c, 0xe9, 0x09,
	0x02, 0xc7, 0x03, 0xf3, 0x3a, 0xcf, 0x85, 0x11,
	0x52, 0x2a, 0x25, 0x7c, 0xd1, 0x75, 0x8d, 0xae,
	0x75, 0x9c, 0x87, 0xc6, 0x87, 0xfd, 0x0a, 0x98,
	0x0c, 0x38, 0x4f, 0x18, 0x8c, 0x35, 0x65, 0x6c,
	0x9b, 0xde, 0xe7, 0x1e, 0x28, 0x59, 0xe9, 0x38,
	0x77, 0xba, 0x48, 0x8a, 0xb1, 0x3e, 0x91, 0x8d,
	0xe4, 0x8c, 0xee, 0xeb, 0x5a, 0x6f, 0xf7, 0x75,
	0x01, 0xff, 0xff, 0x3f, 0x22, 0xe1, 0x3f, 0x73,
	0xe0, 0x6c, 0x61, 0x87, 0x0f, 0x9c, 0xa7, 0xeb,
	0xb2, 0xaa, 0xad, 0xba, 0x56, 0x2e, 0xff, 0x05,
	0x02, 0x4c, 0x19, 0x53, 0xe8, 0x76, 0xcf, 0xea,
	0xae, 0xe4, 0x40, 0x55, 0x82, 0x8f, 0x46, 0x11,
	0x84, 0xde, 0x9c, 0x33, 0x42, 0xea, 0x60, 0x43,
	0xd2, 0x94, 0x8f, 0x0c, 0x18, 0x00, 0x56, 0x15,
	0x08, 0x52, 0xd0, 0x00, 0x10, 0x06, 0xac, 0x2e,
	0xd7, 0x32, 0x8a, 0xa4, 0x84, 0x0c, 0x48, 0x42,
	0x80, 0x44, 0x9a, 0xe5, 0x02, 0x37, 0x9b, 0x87,
	0x24, 0x02, 0x01, 0x3d, 0x86, 0x50, 0x4d, 0x3e,
	0x91, 0x39, 0x40, 0x0d, 0xb0, 0xaf, 0xf0, 0x09,
	0xfa, 0x9a, 0x1e, 0x43, 0xd4, 0x60, 0x82, 0x84,
	0x37, 0x81, 0x78, 0x55, 0xcd, 0x00, 0x0c, 0x27,
	0x78, 0x10, 0x08, 0x0d, 0x06, 0x19, 0x80, 0x17,
	0x01, 0x00, 0x00,
}

// mysqlHeaderLengths are MySQL 8.0.27's post-header lengths per event type.
var mysqlHeaderLengths = []byte{0x38, 0xd, 0x0, 0x8, 0x0, 0x12, 0x0, 0x4, 0x4, 0x4, 0x4, 0x12, 0x0, 0x0, 0x5c, 0x0, 0x4, 0x1a, 0x8, 0x0, 0x0, 0x0, 0x8, 0x8, 0x8, 0x2, 0x0, 0x0, 0x0, 0xa, 0xa, 0xa, 0x19, 0x19, 0x0, 0x12, 0x34, 0x0, 0xa, 0x28, 0x0}

// binlogEventBytes frames body as a binlog event of type t ending at
// logPos, with a (not verified) CRC32 trailer.
func binlogEventBytes(t replication.EventType, logPos uint32, body []byte) []byte {
	size := replication.EventHeaderSize + len(body) + replication.BinlogChecksumLength
	b := make([]byte, replication.EventHeaderSize, size)
	binary.LittleEndian.PutUint32(b[0:], 1700000000)
	b[4] = byte(t)
	binary.LittleEndian.PutUint32(b[5:], 1)
	binary.LittleEndian.PutUint32(b[9:], uint32(size))
	binary.LittleEndian.PutUint32(b[13:], logPos)
	b = append(b, body...)
	return append(b, 0, 0, 0, 0)
}

// compressedCatalog answers for the tables of the compressed payload, as
// a server with binlog_row_metadata=MINIMAL (MySQL's default) would:
// information_schema gives the names and types the table maps lack.
type compressedCatalog struct {
	maps map[string]*replication.TableMapEvent
}

func (compressedCatalog) Flavor() string { return mysql.MySQLFlavor }

func (compressedCatalog) collationCharsets(context.Context) (map[uint64]string, error) {
	return map[uint64]string{8: "latin1", 33: "utf8mb3", 45: "utf8mb4", 46: "utf8mb4", 63: "binary", 255: "utf8mb4"}, nil
}

func (c compressedCatalog) tableInfo(_ context.Context, db, name string) (*infoTable, error) {
	tm := c.maps[db+"."+name]
	it := &infoTable{}
	for i := 0; i < int(tm.ColumnCount); i++ {
		_, types := describeType(realType(tm, i))
		dataType := "varchar"
		if len(types) > 0 {
			dataType = types[0]
		}
		it.columns = append(it.columns, infoColumn{name: "c" + string(rune('0'+i)), dataType: dataType, columnType: dataType, charset: "utf8mb4"})
	}
	it.pk = []string{it.columns[0].name}
	return it, nil
}

// TestMySQLCompressedTransaction reads a real MySQL 8 compressed
// transaction (binlog_transaction_compression=ON) instead of refusing it:
// its insert, update and delete become one event whose rows sit at the
// payload event's start, numbered across the rows events (unique and in
// order), with the transaction boundary at the payload's end.
func TestMySQLCompressedTransaction(t *testing.T) {
	p := replication.NewBinlogParser()
	p.SetFlavor(mysql.MySQLFlavor)
	p.SetVerifyChecksum(false)
	p.SetParseTime(true)
	p.SetRenderJSONAsMySQLText(true)

	fde := make([]byte, 2, 128)
	binary.LittleEndian.PutUint16(fde, 4)
	fde = append(fde, append([]byte("8.0.27"), make([]byte, 50-len("8.0.27"))...)...)
	fde = append(fde, 0, 0, 0, 0, replication.EventHeaderSize)
	fde = append(fde, mysqlHeaderLengths...)
	fde = append(fde, 1) // CRC32; the checksum itself follows (framed below)
	if _, err := p.Parse(binlogEventBytes(replication.FORMAT_DESCRIPTION_EVENT, 126, fde)); err != nil {
		t.Fatalf("format description: %v", err)
	}
	var body []byte
	field := func(typ byte, v uint64) {
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], v)
		body = append(body, typ, 8)
		body = append(body, le[:]...)
	}
	field(replication.OTW_PAYLOAD_SIZE_FIELD, uint64(len(mysqlCompressedPayload)))
	field(replication.OTW_PAYLOAD_COMPRESSION_TYPE_FIELD, replication.ZSTD)
	field(replication.OTW_PAYLOAD_UNCOMPRESSED_SIZE_FIELD, 625404)
	body = append(body, replication.OTW_PAYLOAD_HEADER_END_MARK)
	body = append(body, mysqlCompressedPayload...)
	const payloadStart = 4000
	raw := binlogEventBytes(replication.TRANSACTION_PAYLOAD_EVENT, 0, body)
	end := uint32(payloadStart + len(raw))
	binary.LittleEndian.PutUint32(raw[13:], end)
	ev, err := p.Parse(raw)
	if err != nil {
		t.Fatalf("transaction payload: %v", err)
	}
	pe, ok := ev.Event.(*replication.TransactionPayloadEvent)
	if !ok || len(pe.Events) != 8 {
		t.Fatalf("parsed %T with %d inner events", ev.Event, len(pe.Events))
	}
	cat := compressedCatalog{maps: map[string]*replication.TableMapEvent{}}
	for _, inner := range pe.Events {
		if tm, ok := inner.Event.(*replication.TableMapEvent); ok {
			cat.maps[string(tm.Schema)+"."+string(tm.Table)] = tm
		}
	}
	r := NewReader(Config{SourceName: "mysql8"}, cat, quietLog())
	r.forgetTableIDs()
	r.infos, r.prev = map[string]*infoTable{}, map[[2]string]*string{}
	collations, _ := cat.collationCharsets(context.Background())
	const uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	st := &streamState{file: "binlog.000007", gtids: newGTIDTracker(uuid+":1-22", position.GTIDState{})}
	// The transaction's GTID event comes before its payload.
	sid := []byte{0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62}
	if _, err := r.handle(context.Background(), st, &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.GTID_EVENT},
		Event: &replication.GTIDEvent{SID: sid, GNO: 23}}, collations); err != nil {
		t.Fatal(err)
	}
	out, err := r.handle(context.Background(), st, ev, collations)
	if err != nil {
		t.Fatalf("the compressed transaction was not read: %v", err)
	}
	if out == nil || !out.Boundary || out.Position.File != "binlog.000007" || out.Position.Pos != end {
		t.Fatalf("event %+v: want the transaction's rows with its boundary at binlog.000007:%d", out, end)
	}
	if out.Position.GTID != uuid+":1-23" {
		t.Errorf("the checkpoint's GTID set after the transaction is %q, want the executed set %s:1-23", out.Position.GTID, uuid)
	}
	types := map[string]int{}
	seen := map[string]bool{}
	for i, row := range out.Rows {
		env, err := envelope.Decode(row.Data)
		if err != nil {
			t.Fatalf("row %d: %v\n%s", i, err, row.Data)
		}
		if env.Source.Pos != payloadStart || env.Source.Row != i || env.ID != row.ID || seen[env.ID] {
			t.Fatalf("row %d: id %s at %s:%d row %d; want every row at the payload's start %d, numbered 0, 1, ... across the rows events",
				i, env.ID, env.Source.File, env.Source.Pos, env.Source.Row, payloadStart)
		}
		seen[env.ID] = true
		if env.Source.GTID != uuid+":23" {
			t.Errorf("row %d: gtid %q", i, env.Source.GTID)
		}
		types[env.Type]++
	}
	if types[envelope.TypeInsert] == 0 || types[envelope.TypeUpdate] == 0 || types[envelope.TypeDelete] == 0 {
		t.Fatalf("rows by type %v: want inserts, updates and deletes", types)
	}
	t.Logf("one compressed transaction: %d rows %v at binlog.000007:%d, boundary at %d", len(out.Rows), types, payloadStart, end)
}

// TestMySQLGTID renders MySQL GTID events as "uuid:n", and the anonymous
// transactions of a server with gtid_mode=OFF as no GTID.
func TestMySQLGTID(t *testing.T) {
	sid := []byte{0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62}
	if got := mysqlGTID(&replication.GTIDEvent{SID: sid, GNO: 23}); got != "3e11fa47-71ca-11e1-9e33-c80aa9429562:23" {
		t.Errorf("GTID event: %q", got)
	}
	if got := mysqlGTID(&replication.GTIDEvent{SID: make([]byte, 16), GNO: 0}); got != "" {
		t.Errorf("anonymous GTID event: %q, want none", got)
	}
}
