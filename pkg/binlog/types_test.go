package binlog

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files from this run (review the diff!)")

// TestTypeContract writes every type of the contract through a real MariaDB
// and compares the envelopes with testdata/all_types.golden.json, once with
// the column metadata in the binlog (binlog_row_metadata=FULL) and once with
// information_schema as the only source (NO_LOG): both must give the exact
// same JSON.
func TestTypeContract(t *testing.T) {
	for _, metadata := range []string{"FULL", "NO_LOG"} {
		t.Run(metadata, func(t *testing.T) {
			t.Parallel()
			db := testenv.StartMariaDB(t, testenv.MariaDBOptions{RowMetadata: metadata})
			got := captureEnvelopes(t, db, testenv.ReadSQLFile(t, "testdata/all_types.sql"), 6)
			compareGolden(t, "all_types", got)
		})
	}
}

// captureEnvelopes runs stmts on db and returns the envelopes a Reader emits
// for them, as indented JSON with the run-dependent source fields removed.
func captureEnvelopes(t *testing.T, db *testenv.MariaDB, stmts []string, want int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, src, log := connectTest(ctx, t, db)
	start, err := src.CurrentPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	execOnOneConn(ctx, t, db, stmts)
	events := make(chan Event, 64)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- NewReader(cfg, src, log).Run(ctx, start, stop, events) }()
	var out []json.RawMessage
	for len(out) < want {
		select {
		case ev := <-events:
			for _, r := range ev.Rows {
				out = append(out, normalize(t, r))
			}
		case err := <-done:
			t.Fatalf("reader stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("got %d of %d envelopes", len(out), want)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("reader: %v", err)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// execOnOneConn runs stmts on one connection of db, so that the session
// settings of the first hold for the rest.
func execOnOneConn(ctx context.Context, t *testing.T, db *testenv.MariaDB, stmts []string) {
	t.Helper()
	conn, err := db.DB(t).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// connectTest connects a Source to db as a test reader (source name
// "test", server id 1001), logging to t; it is closed at cleanup.
func connectTest(ctx context.Context, t *testing.T, db *testenv.MariaDB) (Config, *Source, logrus.FieldLogger) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(testWriter{t})
	cfg := Config{Host: db.Host, Port: uint16(db.Port), User: db.User, Password: db.Password,
		ServerID: 1001, HeartbeatPeriod: time.Second, ReadTimeout: 5 * time.Second, SourceName: "test"}
	src, err := Connect(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	return cfg, src, log
}

// normalize checks the run-dependent fields of an envelope and removes them:
// the id and source coordinates differ between runs, the rest must not.
func normalize(t *testing.T, r Row) json.RawMessage {
	t.Helper()
	if !json.Valid(r.Data) {
		t.Fatalf("envelope %s is not valid JSON: %s", r.ID, r.Data)
	}
	env, err := envelope.Decode(r.Data)
	if err != nil {
		t.Fatalf("envelope %s: %v", r.ID, err)
	}
	want := env.Source.File + ":" + itoa(env.Source.Pos) + ":" + itoa(uint32(env.Source.Row))
	if env.ID != r.ID || env.ID != want {
		t.Errorf("envelope id %q, row id %q, source says %q", env.ID, r.ID, want)
	}
	if env.Source.Name != "test" || env.Source.ServerID != 1 || env.Source.TS.IsZero() || env.Source.GTID == "" {
		t.Errorf("envelope %s: source %+v lacks name, server id, ts or gtid", r.ID, env.Source)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "id")
	delete(m, "source")
	delete(m, "prev") // checked by TestEnvelopeChain
	// Keep the producer's key order: re-encode in a fixed order.
	var b bytes.Buffer
	b.WriteString("{")
	first := true
	for _, k := range []string{"v", "db", "table", "type", "pk", "binary", "before", "after"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		b.WriteString(`"` + k + `":`)
		b.Write(v)
	}
	b.WriteString("}")
	return b.Bytes()
}

func itoa(v uint32) string { return string(appendUint(nil, v)) }

func appendUint(b []byte, v uint32) []byte {
	if v >= 10 {
		b = appendUint(b, v/10)
	}
	return append(b, byte('0'+v%10))
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it, then review it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("envelopes differ from %s (the envelope is a public contract):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// TestBinaryKeepsTrailingZeros: the binlog drops the trailing zero bytes
// of a BINARY(n) value, which the column holds (a SELECT returns them, a
// snapshot publishes them): the envelope carries all n bytes, in the key
// too, with the column metadata in the binlog and without it.
func TestBinaryKeepsTrailingZeros(t *testing.T) {
	for _, metadata := range []string{"FULL", "NO_LOG"} {
		t.Run(metadata, func(t *testing.T) {
			t.Parallel()
			db := testenv.StartMariaDB(t, testenv.MariaDBOptions{RowMetadata: metadata})
			got := string(captureEnvelopes(t, db, []string{
				"CREATE DATABASE bz",
				"CREATE TABLE bz.t (k BINARY(4) PRIMARY KEY, b BINARY(6), wide BINARY(255), vb VARBINARY(6))",
				"INSERT INTO bz.t VALUES (x'61', x'', x'01', x'6100')",
				"INSERT INTO bz.t VALUES (x'00000000', x'000000000000', NULL, x'')",
			}, 2))
			for _, want := range []string{
				`"k": "YQAAAA=="`, `"b": "AAAAAAAA"`, `"vb": "YQA="`, // x'61' padded to 4, x'' to 6; VARBINARY as stored
				`"k": "AAAAAA=="`, `"vb": ""`, `"wide": null`,
			} {
				if !strings.Contains(got, want) {
					t.Errorf("envelopes lack %s:\n%s", want, got)
				}
			}
			if strings.Count(got, `"wide": "AQ`) != 1 || !strings.Contains(got, strings.Repeat("A", 300)) {
				t.Errorf("BINARY(255) x'01' is not 255 bytes:\n%s", got)
			}
		})
	}
}
