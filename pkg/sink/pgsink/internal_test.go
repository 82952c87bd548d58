package pgsink

import (
	"testing"

	"github.com/dbsync/dbsync/pkg/sink"
)

func TestCompatible(t *testing.T) {
	col := func(dataType, columnType string, precision, scale int) mapping {
		m, err := mapColumn(sink.Column{Name: "c", DataType: dataType, ColumnType: columnType, Precision: precision, Scale: scale})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, c := range []struct {
		m    mapping
		have string
		want bool
	}{
		{col("tinyint", "tinyint(4)", 3, 0), "smallint", true},
		{col("tinyint", "tinyint(4)", 3, 0), "bigint", true},
		{col("int", "int(10) unsigned", 10, 0), "integer", false},
		{col("int", "int(10) unsigned", 10, 0), "bigint", true},
		{col("int", "int(10) unsigned", 10, 0), "numeric(10,0)", true},
		{col("int", "int(10) unsigned", 10, 0), "numeric(12,2)", false},
		{col("bigint", "bigint(20) unsigned", 20, 0), "bigint", false},
		{col("bigint", "bigint(20) unsigned", 20, 0), "numeric", true},
		{col("bit", "bit(64)", 64, 0), "bigint", false},
		{col("bit", "bit(63)", 63, 0), "bigint", true},
		{col("decimal", "decimal(10,2)", 10, 2), "numeric(12,4)", true},
		{col("decimal", "decimal(10,2)", 10, 2), "numeric(10,1)", false},
		{col("decimal", "decimal(10,2)", 10, 2), "numeric(11,3)", true},
		{col("decimal", "decimal(10,2)", 10, 2), "numeric(9,2)", false},
		{col("float", "float", 12, 0), "double precision", true},
		{col("double", "double", 22, 0), "real", false},
		{col("varchar", "varchar(10)", 0, 0), "character varying", true},
		{col("varchar", "varchar(10)", 0, 0), "character varying(10)", false},
		{col("datetime", "datetime(3)", 3, 0), "timestamp without time zone", true},
		{col("datetime", "datetime(3)", 3, 0), "timestamp(6) without time zone", true},
		{col("datetime", "datetime(3)", 3, 0), "timestamp(2) without time zone", false},
		{col("datetime", "datetime(3)", 3, 0), "timestamp(3) with time zone", false},
		{col("timestamp", "timestamp", 0, 0), "timestamp with time zone", true},
		{col("timestamp", "timestamp", 0, 0), "timestamp without time zone", false},
		{col("time", "time(6)", 6, 0), "interval(6)", true},
		{col("time", "time(6)", 6, 0), "interval(3)", false},
		{col("time", "time(6)", 6, 0), "time without time zone", false},
		{col("json", "longtext", 0, 0), "json", false},
		{col("set", "set('a')", 0, 0), "text[]", true},
	} {
		if got := compatible(c.m, c.have); got != c.want {
			t.Errorf("compatible(%s as %s, %q) = %v, want %v", c.m.source, c.m.format, c.have, got, c.want)
		}
	}
}

func TestTimeValue(t *testing.T) {
	for _, c := range []struct {
		usec int64
		fsp  int
		want string
	}{
		{0, 6, "00:00:00"},
		{-(838*3600 + 59*60 + 59) * 1e6, 0, "-838:59:59"},
		{(12*3600+34*60+56)*1e6 + 123456, 6, "12:34:56.123456"},
		{(12*3600+34*60+56)*1e6 + 100000, 3, "12:34:56.100"},
		{12 * 3600 * 1e6, 6, "12:00:00"},
		{-1500000, 1, "-00:00:01.5"},
	} {
		if got := timeValue(c.usec, c.fsp); got != c.want {
			t.Errorf("timeValue(%d, %d) = %q, want %q", c.usec, c.fsp, got, c.want)
		}
	}
}
