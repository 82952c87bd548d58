package binlog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
)

// SnapshotReader reads tables' existing rows in chunks of their key, on a
// connection of its own, with no lock and no write: every chunk is one
// SELECT in a consistent-snapshot transaction, bracketed by the binlog
// positions (watermarks) the Reader needs to publish it in order with the
// live changes (see SnapshotFeed).
type SnapshotReader struct {
	src *Source
	log logrus.FieldLogger
}

// OpenSnapshotReader connects with cfg. The session reads in UTC (so a
// TIMESTAMP reads as the instant the binlog carries), in utf8mb4, at
// REPEATABLE READ.
func OpenSnapshotReader(ctx context.Context, cfg Config, log logrus.FieldLogger) (*SnapshotReader, error) {
	cfg.Charset = "utf8mb4"
	cfg.session = []string{
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"SET time_zone = '+00:00'",
	}
	src, err := Connect(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return &SnapshotReader{src: src, log: log}, nil
}

// Close closes the connection.
func (sr *SnapshotReader) Close() { sr.src.Close() }

// ErrNoSuchTable is wrapped by Plan's error for a table that does not
// exist.
var ErrNoSuchTable = errors.New("no such table")

// ErrKeyless is wrapped by Plan's error for a table with neither a primary
// key nor a unique key over NOT NULL columns, when keyless tables are
// refused.
var ErrKeyless = errors.New("no primary key and no unique key over NOT NULL columns")

// SnapshotPlan is how one table is read: its columns' encoding and the key
// its chunks are ordered and bounded by.
type SnapshotPlan struct {
	DB, Table string
	t         *table
	// key holds the column indexes of the chunking key, nil for a table
	// read in one go.
	key []int
	// KeyName says which key chunks the table ("PRIMARY", a unique key's
	// name, or "" for none).
	KeyName string
	// EstimatedRows is information_schema's row estimate.
	EstimatedRows int64
	columns       string // the select list
}

// Keyless reports whether the table is read in one go, without chunks.
func (p *SnapshotPlan) Keyless() bool { return p.key == nil }

// KeyColumns names the chunking key's columns.
func (p *SnapshotPlan) KeyColumns() []string {
	names := make([]string, len(p.key))
	for i, k := range p.key {
		names[i] = p.t.columns[k].name
	}
	return names
}

// Plan describes how db.table is read: chunked by its primary key, else
// by a unique key over NOT NULL columns (the first by name), else in one
// go. It fails for a missing table (wrapping ErrNoSuchTable) and for a
// column the type contract cannot express (*SchemaError).
func (sr *SnapshotReader) Plan(ctx context.Context, db, name string) (*SnapshotPlan, error) {
	info, err := sr.src.tableInfo(ctx, db, name)
	if err != nil {
		return nil, fmt.Errorf("read the definition of %s.%s: %w", db, name, err)
	}
	if info == nil {
		return nil, fmt.Errorf("snapshot of %s.%s: %w", db, name, ErrNoSuchTable)
	}
	t, err := tableFromInfo(db, name, info)
	if err != nil {
		return nil, err
	}
	p := &SnapshotPlan{DB: db, Table: name, t: t}
	keyName, keyCols, err := sr.chunkKey(ctx, db, name, info)
	if err != nil {
		return nil, err
	}
	p.KeyName = keyName
	for _, k := range keyCols {
		for i := range t.columns {
			if t.columns[i].name == k {
				p.key = append(p.key, i)
			}
		}
	}
	cols := make([]string, len(t.columns))
	for i := range t.columns {
		cols[i] = quoteName(t.columns[i].name)
	}
	p.columns = strings.Join(cols, ", ")
	if r, err := sr.src.execute(ctx, "SELECT IFNULL(TABLE_ROWS, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", db, name); err == nil && r.RowNumber() > 0 {
		n, _ := r.GetInt(0, 0)
		p.EstimatedRows = n
	}
	return p, nil
}

// chunkKey picks the chunking key: PRIMARY, else the first unique key (by
// name) whose columns are all NOT NULL; none returns "", nil.
func (sr *SnapshotReader) chunkKey(ctx context.Context, db, name string, info *infoTable) (string, []string, error) {
	if len(info.pk) > 0 && orderable(info, info.pk) {
		return "PRIMARY", info.pk, nil
	}
	r, err := sr.src.execute(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX`, db, name)
	if err != nil {
		return "", nil, fmt.Errorf("read the keys of %s.%s: %w", db, name, err)
	}
	keys := map[string][]string{}
	var order []string
	for i := 0; i < r.RowNumber(); i++ {
		idx, _ := r.GetString(i, 0)
		col, _ := r.GetString(i, 1)
		if _, ok := keys[idx]; !ok {
			order = append(order, idx)
		}
		keys[idx] = append(keys[idx], col)
	}
	for _, idx := range order {
		usable := idx != "PRIMARY" && orderable(info, keys[idx])
		for _, col := range keys[idx] {
			if c := info.column(col); c == nil || c.nullable {
				usable = false
			}
		}
		if usable {
			return idx, keys[idx], nil
		}
	}
	return "", nil, nil
}

// orderable reports whether chunks can be bounded by the columns cols:
// "key > value" must order rows as ORDER BY key does, which ENUM and SET
// (ordered by member index, compared by name), BIT, floating point, JSON
// and spatial columns do not promise.
func orderable(info *infoTable, cols []string) bool {
	for _, col := range cols {
		c := info.column(col)
		if c == nil {
			return false
		}
		switch strings.ToLower(c.dataType) {
		case "enum", "set", "bit", "float", "double", "real", "json", "geometry", "point", "linestring", "polygon",
			"multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
			return false
		}
	}
	return true
}

// quoteName quotes an identifier in backquotes.
func quoteName(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// SnapshotChunk is the rows one chunk read, with the watermarks that place
// it in the binlog.
type SnapshotChunk struct {
	Plan *SnapshotPlan
	// Rows is how many rows the chunk read.
	Rows int
	// images are the rows encoded as an envelope's "after" object (the
	// same bytes a binlog change of the row carries), encoded here so
	// that the Reader only frames them.
	images [][]byte
	// Keys are the rows' chunking keys as JSON (the same bytes a binlog
	// change of the row has), for matching them with live changes.
	Keys []string
	// After is the key of the chunk's last row, where the next chunk
	// starts; Last says no row follows.
	After []position.KeyValue
	Last  bool
	// Low is the binlog position the read saw everything before (the
	// zero Position when the server cannot say: then every change since
	// the window opened counts); High is the binlog's end after the read.
	Low, High position.Position
}

// Images returns the chunk's rows as envelope "after" objects, the same
// bytes a binlog change of each row carries (a sync's equality check reads
// a table's rows this way).
func (c *SnapshotChunk) Images() [][]byte { return c.images }

// ReadChunk reads the up to n rows of plan's table that follow after (all
// rows of a keyless table) in one consistent-snapshot transaction, and the
// watermarks around it. Open the table's window (SnapshotFeed.Open) first.
func (sr *SnapshotReader) ReadChunk(ctx context.Context, plan *SnapshotPlan, after []position.KeyValue, n int) (*SnapshotChunk, error) {
	low, err := sr.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s.%s: %w", plan.DB, plan.Table, err)
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = sr.src.execute(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	query, args, err := plan.chunkQuery(after, n)
	if err != nil {
		return nil, err
	}
	r, err := sr.src.execute(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s.%s: read a chunk: %w", plan.DB, plan.Table, err)
	}
	if _, err := sr.src.execute(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("snapshot of %s.%s: %w", plan.DB, plan.Table, err)
	}
	committed = true
	high, err := sr.src.CurrentFilePosition(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s.%s: %w", plan.DB, plan.Table, err)
	}
	c := &SnapshotChunk{Plan: plan, Low: low, High: high, Last: plan.key == nil || r.RowNumber() <= n}
	rows := r.RowNumber()
	if plan.key != nil && rows > n {
		rows = n
	}
	c.Rows = rows
	c.images = make([][]byte, rows)
	c.Keys = make([]string, rows)
	vals := make([]any, len(plan.t.columns))
	buf := make([]byte, 0, rows*plan.t.envelopeSize(0))
	ends := make([]int, rows)
	for i := 0; i < rows; i++ {
		for j := range plan.t.columns {
			v, err := snapshotValue(&plan.t.columns[j], &r.Values[i][j])
			if err != nil {
				return nil, &ValueError{DB: plan.DB, Table: plan.Table, Column: plan.t.columns[j].name, Reason: err.Error()}
			}
			vals[j] = v
		}
		if buf, err = appendImage(buf, plan.t, vals, nil); err != nil {
			return nil, err
		}
		ends[i] = len(buf)
		key, err := plan.keyJSON(vals)
		if err != nil {
			return nil, err
		}
		c.Keys[i] = key
	}
	start := 0
	for i := range c.images {
		c.images[i] = buf[start:ends[i]:ends[i]]
		start = ends[i]
	}
	if plan.key != nil && rows > 0 {
		last := r.Values[rows-1]
		for _, k := range plan.key {
			c.After = append(c.After, keyValueOf(&plan.t.columns[k], &last[k]))
		}
	} else {
		c.After = after
	}
	return c, nil
}

// maxSnapshotStarts bounds how often begin starts a snapshot again while
// a transaction the binlog already holds is not committed yet.
const maxSnapshotStarts = 1000

// begin starts a consistent-snapshot transaction and returns the binlog
// position it corresponds to (Low), or the zero Position where the server
// cannot say (MySQL).
//
// On MariaDB the snapshot is started again until that position is at or
// after the binlog's end as it was just before: a transaction is written
// to the binlog before it commits, so the binlog reader may have read (and
// the window missed, being opened later) a change the snapshot does not
// see yet. Once Low is past the end the window was opened before, every
// change the snapshot misses is one the window notes.
func (sr *SnapshotReader) begin(ctx context.Context) (position.Position, error) {
	for attempt := 1; ; attempt++ {
		var before position.Position
		if sr.src.flavor == mysql.MariaDBFlavor {
			var err error
			if before, err = sr.src.CurrentFilePosition(ctx); err != nil {
				return position.Position{}, err
			}
		}
		if _, err := sr.src.execute(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
			return position.Position{}, err
		}
		if sr.src.flavor != mysql.MariaDBFlavor {
			return position.Position{}, nil
		}
		// MariaDB names the binlog position its consistent snapshot
		// corresponds to exactly.
		r, err := sr.src.execute(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return position.Position{}, err
		}
		var low position.Position
		for i := 0; i < r.RowNumber(); i++ {
			k, _ := r.GetString(i, 0)
			v, _ := r.GetString(i, 1)
			switch strings.ToLower(k) {
			case "binlog_snapshot_file":
				low.File = v
			case "binlog_snapshot_position":
				p, _ := strconv.ParseUint(v, 10, 32)
				low.Pos = uint32(p)
			}
		}
		if low.File == "" || low.Compare(before) >= 0 {
			if low.File == "" {
				low = position.Position{}
			}
			return low, nil
		}
		if _, err := sr.src.execute(ctx, "ROLLBACK"); err != nil {
			return position.Position{}, err
		}
		if attempt >= maxSnapshotStarts {
			return position.Position{}, fmt.Errorf("the consistent snapshot stayed behind the binlog (at %s, the binlog at %s) through %d starts: a transaction in the binlog does not commit (an XA transaction prepared and left open?)",
				low, before, attempt)
		}
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return position.Position{}, ctx.Err()
		}
	}
}

// chunkQuery is the SELECT of the rows after the key after (n+1 of them,
// to tell whether more follow), in key order; a keyless table is read
// whole. LIMIT is a parameter so that the query always runs as a prepared
// statement: its binary results carry floats exactly.
func (p *SnapshotPlan) chunkQuery(after []position.KeyValue, n int) (string, []any, error) {
	q := "SELECT " + p.columns + " FROM " + quoteName(p.DB) + "." + quoteName(p.Table)
	if p.key == nil {
		return q + " LIMIT ?", []any{uint64(1) << 62}, nil
	}
	var args []any
	if len(after) > 0 {
		if len(after) != len(p.key) {
			return "", nil, fmt.Errorf("snapshot of %s.%s: the saved key has %d columns, the key %s has %d; cancel the snapshot and start it again",
				p.DB, p.Table, len(after), p.KeyName, len(p.key))
		}
		vals := make([]any, len(after))
		for i, kv := range after {
			v, err := bindKey(kv)
			if err != nil {
				return "", nil, fmt.Errorf("snapshot of %s.%s: saved key: %w", p.DB, p.Table, err)
			}
			vals[i] = v
		}
		// (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...: what an index range
		// scan serves on every server version.
		// A DECIMAL is bound as one: as a string it would compare as a
		// double, and keys beyond its 53 bits would tie.
		param := func(k int) string {
			if p.t.columns[k].kind == kindDecimal {
				return "CAST(? AS DECIMAL(65,30))"
			}
			return "?"
		}
		var ors []string
		for i := range p.key {
			var ands []string
			for j := 0; j < i; j++ {
				ands = append(ands, quoteName(p.t.columns[p.key[j]].name)+" = "+param(p.key[j]))
				args = append(args, vals[j])
			}
			ands = append(ands, quoteName(p.t.columns[p.key[i]].name)+" > "+param(p.key[i]))
			args = append(args, vals[i])
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		}
		q += " WHERE " + strings.Join(ors, " OR ")
	}
	order := make([]string, len(p.key))
	for i, k := range p.key {
		order[i] = quoteName(p.t.columns[k].name)
	}
	q += " ORDER BY " + strings.Join(order, ", ") + " LIMIT ?"
	return q, append(args, uint64(n)+1), nil
}

// keyJSON renders the chunking key of a row's values as the JSON the
// envelope would carry; for a keyless table, the whole row.
func (p *SnapshotPlan) keyJSON(vals []any) (string, error) {
	return keyOf(p.t, p.key, vals)
}

// keyOf renders the values of columns idx (all columns when idx is nil)
// of row vals as a JSON array.
func keyOf(t *table, idx []int, vals []any) (string, error) {
	b := []byte{'['}
	add := func(i int) error {
		if len(b) > 1 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendValue(b, &t.columns[i], vals[i]); err != nil {
			return &ValueError{DB: t.db, Table: t.name, Column: t.columns[i].name, Reason: err.Error()}
		}
		return nil
	}
	if idx == nil {
		for i := range t.columns {
			if i < len(vals) {
				if err := add(i); err != nil {
					return "", err
				}
			}
		}
	} else {
		for _, i := range idx {
			if err := add(i); err != nil {
				return "", err
			}
		}
	}
	return string(append(b, ']')), nil
}

// keyValueOf keeps a key column's value as read, to bind it again.
func keyValueOf(c *column, fv *mysql.FieldValue) position.KeyValue {
	switch fv.Type {
	case mysql.FieldValueTypeSigned:
		return position.KeyValue{Kind: "i", Value: strconv.FormatInt(fv.AsInt64(), 10)}
	case mysql.FieldValueTypeUnsigned:
		return position.KeyValue{Kind: "u", Value: strconv.FormatUint(fv.AsUint64(), 10)}
	case mysql.FieldValueTypeFloat:
		return position.KeyValue{Kind: "f", Value: strconv.FormatFloat(fv.AsFloat64(), 'g', -1, 64)}
	}
	if c.kind == kindBytes {
		return position.KeyValue{Kind: "b", Value: base64.StdEncoding.EncodeToString(fv.AsString())}
	}
	return position.KeyValue{Kind: "s", Value: string(fv.AsString())}
}

// bindKey turns a saved key value back into a query argument.
func bindKey(kv position.KeyValue) (any, error) {
	switch kv.Kind {
	case "i":
		return strconv.ParseInt(kv.Value, 10, 64)
	case "u":
		return strconv.ParseUint(kv.Value, 10, 64)
	case "f":
		return strconv.ParseFloat(kv.Value, 64)
	case "s":
		return kv.Value, nil
	case "b":
		return base64.StdEncoding.DecodeString(kv.Value)
	}
	return nil, fmt.Errorf("unknown key value kind %q", kv.Kind)
}

// tableFromInfo builds the encoding plan of a table from
// information_schema alone, for rows read with SELECT: the same kinds,
// layouts and fragments a table map of the table would give. Text arrives
// in utf8mb4 (the snapshot connection's character set: the server
// converts latin1 as dbsync does).
func tableFromInfo(db, name string, info *infoTable) (*table, error) {
	if strings.ContainsAny(db+name, ". *>\t\r\n") {
		return nil, &SchemaError{DB: db, Table: name, Unpublishable: true, Reason: "the name contains a character that cannot be part of a broker subject"}
	}
	t := &table{db: db, name: name, columns: make([]column, len(info.columns)), pk: info.pk}
	for i, ic := range info.columns {
		c := &t.columns[i]
		c.name = ic.name
		c.key = append(appendJSONString(nil, c.name), ':')
		rt, ok := infoType(ic.dataType)
		if !ok {
			return nil, &SchemaError{DB: db, Table: name, Reason: fmt.Sprintf("column %q: type %s is not supported by dbsync", c.name, ic.columnType)}
		}
		c.realType = rt
		c.unsigned = strings.Contains(ic.columnType, "unsigned")
		if err := checkCharset(ic.charset); err != nil {
			return nil, &SchemaError{DB: db, Table: name, Unpublishable: true, Reason: fmt.Sprintf("column %q: %v", c.name, err)}
		}
		c.charset = ic.charset
		if c.charset != "" && c.charset != "binary" {
			c.charset = "utf8mb4" // converted by the server
		}
		if rt == mysql.MYSQL_TYPE_ENUM || rt == mysql.MYSQL_TYPE_SET {
			c.values = parseEnumValues(ic.columnType)
		}
		kind, err := kindOf(rt, ic.charset, ic.json, true)
		if err != nil {
			return nil, &SchemaError{DB: db, Table: name, Reason: fmt.Sprintf("column %q: %v", c.name, err)}
		}
		c.kind = kind
		c.fsp = ic.precision
		if kind == kindDatetime || kind == kindTimestamp {
			c.layout = newTimeLayout(rt, uint16(ic.precision), kind == kindTimestamp)
		}
	}
	t.prepareFragments()
	return t, nil
}

// infoType maps information_schema's DATA_TYPE to the binlog column type
// a table map carries for it.
func infoType(dataType string) (byte, bool) {
	switch strings.ToLower(dataType) {
	case "tinyint", "bool", "boolean":
		return mysql.MYSQL_TYPE_TINY, true
	case "smallint":
		return mysql.MYSQL_TYPE_SHORT, true
	case "mediumint":
		return mysql.MYSQL_TYPE_INT24, true
	case "int", "integer":
		return mysql.MYSQL_TYPE_LONG, true
	case "bigint":
		return mysql.MYSQL_TYPE_LONGLONG, true
	case "float":
		return mysql.MYSQL_TYPE_FLOAT, true
	case "double", "real", "double precision":
		return mysql.MYSQL_TYPE_DOUBLE, true
	case "decimal", "numeric":
		return mysql.MYSQL_TYPE_NEWDECIMAL, true
	case "year":
		return mysql.MYSQL_TYPE_YEAR, true
	case "bit":
		return mysql.MYSQL_TYPE_BIT, true
	case "date":
		return mysql.MYSQL_TYPE_DATE, true
	case "time":
		return mysql.MYSQL_TYPE_TIME2, true
	case "datetime":
		return mysql.MYSQL_TYPE_DATETIME2, true
	case "timestamp":
		return mysql.MYSQL_TYPE_TIMESTAMP2, true
	case "enum":
		return mysql.MYSQL_TYPE_ENUM, true
	case "set":
		return mysql.MYSQL_TYPE_SET, true
	case "json":
		return mysql.MYSQL_TYPE_JSON, true
	case "char", "binary":
		return mysql.MYSQL_TYPE_STRING, true
	case "varchar", "varbinary":
		return mysql.MYSQL_TYPE_VARCHAR, true
	case "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob":
		return mysql.MYSQL_TYPE_BLOB, true
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
		"geometrycollection", "geomcollection":
		return mysql.MYSQL_TYPE_GEOMETRY, true
	}
	return 0, false
}

// snapshotValue turns a value of a binary-protocol result into the value
// go-mysql's binlog decoder gives for the same stored value, so that
// appendValue writes the same bytes for both.
func snapshotValue(c *column, fv *mysql.FieldValue) (any, error) {
	if fv.Type == mysql.FieldValueTypeNull {
		return nil, nil
	}
	switch c.kind {
	case kindNumber:
		switch fv.Type {
		case mysql.FieldValueTypeUnsigned:
			return fv.AsUint64(), nil
		case mysql.FieldValueTypeSigned:
			return fv.AsInt64(), nil
		case mysql.FieldValueTypeFloat:
			if c.realType == mysql.MYSQL_TYPE_FLOAT {
				return float32(fv.AsFloat64()), nil
			}
			return fv.AsFloat64(), nil
		}
	case kindBit:
		var n uint64
		for _, b := range fv.AsString() {
			n = n<<8 | uint64(b)
		}
		return int64(n), nil
	case kindEnum:
		name := string(fv.AsString())
		if name == "" {
			return int64(0), nil
		}
		for i, v := range c.values {
			if v == name {
				return int64(i + 1), nil
			}
		}
		return nil, fmt.Errorf("ENUM value %q is not one of the %d members information_schema lists", name, len(c.values))
	case kindSet:
		var mask int64
		if s := string(fv.AsString()); s != "" {
			for _, name := range strings.Split(s, ",") {
				found := false
				for i, v := range c.values {
					if v == name {
						mask |= 1 << i
						found = true
						break
					}
				}
				if !found {
					return nil, fmt.Errorf("SET member %q is not one of the %d members information_schema lists", name, len(c.values))
				}
			}
		}
		return mask, nil
	case kindDate:
		if c.realType == mysql.MYSQL_TYPE_TIME2 {
			return binlogTime(string(fv.AsString()), c.fsp)
		}
		return string(fv.AsString()), nil
	case kindDatetime, kindTimestamp:
		return binlogDatetime(string(fv.AsString()), c.fsp, c.kind == kindTimestamp)
	default:
		return string(fv.AsString()), nil
	}
	return nil, fmt.Errorf("unexpected value of type %d for a %s column", fv.Type, typeName(c.realType))
}

// binlogTime renders a TIME read as "[-]H:MM:SS[.ffffff]" the way
// go-mysql decodes TIME2 from the binlog: no fraction when it is zero,
// else dec digits.
func binlogTime(s string, dec int) (string, error) {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	hms, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return "", fmt.Errorf("unexpected TIME value %q", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil {
			return "", fmt.Errorf("unexpected TIME value %q", s)
		}
		n[i] = v
	}
	usec := 0
	if frac != "" {
		frac = (frac + "000000")[:6]
		usec, _ = strconv.Atoi(frac)
	}
	if usec == 0 {
		if n == [3]int{} {
			return "00:00:00", nil
		}
		return fmt.Sprintf("%s%02d:%02d:%02d", sign, n[0], n[1], n[2]), nil
	}
	out := fmt.Sprintf("%s%02d:%02d:%02d.%06d", sign, n[0], n[1], n[2], usec)
	return out[:len(out)-(6-dec)], nil
}

// binlogDatetime turns a DATETIME or TIMESTAMP read as "YYYY-MM-DD
// HH:MM:SS[.ffffff]" (a TIMESTAMP in UTC) into what go-mysql decodes from
// the binlog: a time.Time, or for zero and out-of-range dates the literal
// with dec fraction digits.
func binlogDatetime(s string, dec int, timestamp bool) (any, error) {
	var y, mo, d, h, mi, sec, usec int
	date, clock, _ := strings.Cut(s, " ")
	clock, frac, _ := strings.Cut(clock, ".")
	if !splitInts(date, '-', &y, &mo, &d) || (clock != "" && !splitInts(clock, ':', &h, &mi, &sec)) {
		return nil, fmt.Errorf("unexpected date and time %q", s)
	}
	if frac != "" {
		usec, _ = strconv.Atoi((frac + "000000")[:6])
	}
	zero := y == 0 && mo == 0 && d == 0 && h == 0 && mi == 0 && sec == 0
	if zero {
		return zeroTime(usec, dec), nil
	}
	before1970 := y < 1970 || (y == 1970 && mo < 1) || (y == 1970 && mo == 1 && d < 1)
	if !timestamp && (before1970 || mo == 0 || d == 0) {
		out := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, h, mi, sec)
		if dec > 0 {
			out += fmt.Sprintf(".%06d", usec)[:dec+1]
		}
		return out, nil
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, usec*1000, time.UTC), nil
}

// splitInts parses s as len(out) unsigned decimal numbers separated by
// sep into out; it reports whether s had exactly that form. (fmt.Sscanf
// did this at a third of the snapshot reader's CPU.)
func splitInts(s string, sep byte, out ...*int) bool {
	for i, p := range out {
		field := s
		if i < len(out)-1 {
			j := strings.IndexByte(s, sep)
			if j < 0 {
				return false
			}
			field, s = s[:j], s[j+1:]
		}
		if field == "" || len(field) > 9 {
			return false
		}
		n := 0
		for k := 0; k < len(field); k++ {
			c := field[k]
			if c < '0' || c > '9' {
				return false
			}
			n = n*10 + int(c-'0')
		}
		*p = n
	}
	return true
}

// zeroTime is go-mysql's rendering of a zero DATETIME or TIMESTAMP.
func zeroTime(usec, dec int) string {
	if dec == 0 {
		return "0000-00-00 00:00:00"
	}
	return "0000-00-00 00:00:00" + fmt.Sprintf(".%06d", usec)[:dec+1]
}

// keylessError is the refusal of a table without a usable key.
func keylessError(db, name string) error {
	return failure.WithFix(failure.Permanent(fmt.Errorf("snapshot of %s.%s: %w", db, name, ErrKeyless)),
		"add a primary key to the table, or set Snapshot.Keyless to \"read\" to read it in one go (its rows are held in memory at once)")
}

// Tables lists the server's base tables outside the system schemas that
// cfg.Include accepts, ordered by database and name.
func (s *Source) Tables(ctx context.Context) ([][2]string, error) {
	r, err := s.execute(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
		ORDER BY TABLE_SCHEMA, TABLE_NAME`)
	if err != nil {
		return nil, fmt.Errorf("list the tables: %w", err)
	}
	var out [][2]string
	for i := 0; i < r.RowNumber(); i++ {
		db, _ := r.GetString(i, 0)
		name, _ := r.GetString(i, 1)
		if s.cfg.Include == nil || s.cfg.Include(db, name) {
			out = append(out, [2]string{db, name})
		}
	}
	return out, nil
}

// KeylessTables lists the included tables (Tables) with neither a primary
// key nor a unique key over NOT NULL columns: a snapshot reads them in one
// go.
func (s *Source) KeylessTables(ctx context.Context) ([][2]string, error) {
	tables, err := s.Tables(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.execute(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, MAX(NULLABLE = 'YES') FROM information_schema.STATISTICS
		WHERE NON_UNIQUE = 0 GROUP BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME`)
	if err != nil {
		return nil, fmt.Errorf("list the tables' keys: %w", err)
	}
	keyed := map[[2]string]bool{}
	for i := 0; i < r.RowNumber(); i++ {
		db, _ := r.GetString(i, 0)
		name, _ := r.GetString(i, 1)
		nullable, _ := r.GetInt(i, 3)
		if nullable == 0 {
			keyed[[2]string{db, name}] = true
		}
	}
	var out [][2]string
	for _, t := range tables {
		if !keyed[t] {
			out = append(out, t)
		}
	}
	return out, nil
}
