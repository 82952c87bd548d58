// Package sync_test runs dbsync's sync command (cmd/sync) end to end:
// a real MariaDB, the producer, a broker, and the Redis and PostgreSQL
// targets, each started by the test environment; after a random workload,
// crashes of the producer and of the sync processes, or a snapshot of
// existing rows followed by live changes, each target must hold exactly the
// rows MariaDB holds, value for value.
package sync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/pgsink"
	"github.com/dbsync/dbsync/pkg/sink/redissink"
	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

var producerBin, syncBin string

func TestMain(m *testing.M) {
	bin, cleanup := e2e.MustBuildProducer()
	producerBin = bin
	dir, err := os.MkdirTemp("", "dbsync-sync-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	syncBin = filepath.Join(dir, "sync")
	build := exec.Command("go", "build", "-o", syncBin, "github.com/dbsync/dbsync/cmd/sync")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build cmd/sync: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

// schema is the tables synced besides shop.all_types (every type of the
// contract, created from the contract's own DDL in pkg/binlog/testdata):
// a plain one, and one with a composite key whose updates move rows.
const schema = `CREATE TABLE shop.orders (id BIGINT NOT NULL PRIMARY KEY, status VARCHAR(20) NOT NULL, total DECIMAL(12,2) NOT NULL,
  note TEXT NULL, updated DATETIME(3) NOT NULL) ENGINE=InnoDB
;
CREATE TABLE shop.pairs (a VARCHAR(20) NOT NULL, b INT NOT NULL, v VARCHAR(50), PRIMARY KEY (a, b)) ENGINE=InnoDB`

// contractDDL is the CREATE DATABASE shop and CREATE TABLE shop.all_types
// statements of the type contract's test data (not its rows).
func contractDDL(t *testing.T) []string {
	var out []string
	for _, stmt := range testenv.ReadSQLFile(t, "../../pkg/binlog/testdata/all_types.sql") {
		if strings.HasPrefix(strings.TrimSpace(stmt), "CREATE ") {
			out = append(out, stmt)
		}
	}
	if len(out) != 2 {
		t.Fatalf("all_types.sql holds %d CREATE statements, want CREATE DATABASE shop and CREATE TABLE shop.all_types", len(out))
	}
	return out
}

var tableNames = []string{"shop.all_types", "shop.orders", "shop.pairs"}

// world is one test's servers and processes.
type world struct {
	t        *testing.T
	e        *e2e.Env
	producer *e2e.Proc
	redis    *testenv.Redis
	pg       *testenv.Postgres
	syncs    map[string]*testenv.Child // by target
	configs  map[string]string
	tables   []*sink.Table
}

// newWorld starts MariaDB with the schema, the broker, Redis and
// PostgreSQL; mod adjusts the producer's config before it starts.
func newWorld(t *testing.T, broker string) *world {
	e := e2e.NewEnvBroker(t, producerBin, broker)
	e.DB.Exec(t, contractDDL(t)...)
	for _, stmt := range strings.Split(schema, "\n;\n") {
		e.DB.Exec(t, stmt)
	}
	w := &world{t: t, e: e, redis: testenv.StartRedis(t), pg: testenv.StartPostgres(t), syncs: map[string]*testenv.Child{}, configs: map[string]string{}}
	w.pg.CreateDB(t, "mirror")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	names := make([][2]string, len(tableNames))
	for i, n := range tableNames {
		names[i][0], names[i][1], _ = strings.Cut(n, ".")
	}
	if w.tables, err = sink.LoadTables(ctx, e.DB.DB(t), names); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"redis", "postgres"} {
		w.configs[target] = w.writeSyncConfig(target)
	}
	return w
}

// writeSyncConfig writes the sync command's config for target.
func (w *world) writeSyncConfig(target string) string {
	return w.writeSyncConfigWith(target, nil)
}

// writeSyncConfigWith is writeSyncConfig with mod applied to the config.
func (w *world) writeSyncConfigWith(target string, mod func(cfg map[string]any)) string {
	b := map[string]any{"Broker": w.e.Broker}
	switch w.e.Broker {
	case e2e.JetStream:
		b["URL"] = w.e.NATS.URL()
	case e2e.Kafka:
		b["Brokers"] = w.e.Kafka.Brokers
	default:
		b["URL"] = "nats://" + w.e.Stan.Host + ":" + strconv.Itoa(w.e.Stan.Port)
		b["ClusterID"] = w.e.Stan.ClusterID
	}
	cfg := map[string]any{
		"Tables": tableNames,
		"Target": target,
		"Source": map[string]any{"Host": w.e.DB.Host, "Port": w.e.DB.Port, "User": w.e.DB.User, "Password": w.e.DB.Password},
		"Broker": b,
		"Batch":  map[string]any{"MaxChanges": 200},
		"HTTP":   map[string]any{"Listen": "127.0.0.1:" + strconv.Itoa(testenv.FreePort(w.t))},
		"Log":    map[string]any{"Level": "debug"},
	}
	if target == "redis" {
		cfg["Redis"] = map[string]any{"Addr": w.redis.Addr()}
	} else {
		cfg["Postgres"] = map[string]any{"DSN": w.pg.DSN("mirror")}
	}
	if mod != nil {
		mod(cfg)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		w.t.Fatal(err)
	}
	path := filepath.Join(w.t.TempDir(), target+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// startSync starts the sync process of target (its output appended to a
// file the test reports on failure).
func (w *world) startSync(target string) {
	out := filepath.Join(filepath.Dir(w.configs[target]), target+".log")
	c, err := testenv.StartChildLogging(out, syncBin, "-config", w.configs[target])
	if err != nil {
		w.t.Fatal(err)
	}
	w.syncs[target] = c
	w.t.Cleanup(c.Kill)
}

// syncLog is the output of target's sync processes so far.
func (w *world) syncLog(target string) string {
	data, _ := os.ReadFile(filepath.Join(filepath.Dir(w.configs[target]), target+".log"))
	return string(data)
}

// startProducer starts the producer and waits until it streams.
func (w *world) startProducer() {
	w.producer = w.e.Start()
	e2e.WaitLog(w.t, w.producer, "binlog stream started")
}

// rows are a table's rows: the primary key's JSON array -> column -> value
// in the contract's JSON form.
type rows = map[string]map[string]json.RawMessage

// sourceRows reads a table's rows from MariaDB as the producer's snapshot
// encodes them: byte for byte what a change of the row carries.
func (w *world) sourceRows(ctx context.Context, t *sink.Table) (rows, error) {
	log := logrus.New()
	log.SetOutput(bytes.NewBuffer(nil))
	db := w.e.DB
	rd, err := binlog.OpenSnapshotReader(ctx, binlog.Config{Host: db.Host, Port: uint16(db.Port), User: db.User, Password: db.Password,
		ServerID: 4242, ConnectTimeout: 10 * time.Second}, log)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	plan, err := rd.Plan(ctx, t.DB, t.Name)
	if err != nil {
		return nil, err
	}
	chunk, err := rd.ReadChunk(ctx, plan, nil, 1<<30)
	if err != nil {
		return nil, err
	}
	out := rows{}
	for _, img := range chunk.Images() {
		var row map[string]json.RawMessage
		if err := json.Unmarshal(img, &row); err != nil {
			return nil, err
		}
		out[keyOf(t, row)] = row
	}
	return out, nil
}

// keyOf is the JSON array of row's primary key values.
func keyOf(t *sink.Table, row map[string]json.RawMessage) string {
	parts := make([]string, len(t.PK))
	for i, c := range t.PK {
		parts[i] = canonical(row[c])
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// canonical is a JSON value with insignificant differences removed
// (spacing, object key order: a JSON column's value as jsonb gives it
// back); numbers keep their digits.
func canonical(v json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return "invalid JSON " + string(v)
	}
	out, _ := json.Marshal(x)
	return string(out)
}

// diff describes how got differs from want (empty when equal), at most a
// few differences.
func diff(t *sink.Table, want, got rows) string {
	rekeyed := rows{}
	for _, row := range got {
		rekeyed[keyOf(t, row)] = row
	}
	var out []string
	for k, wr := range want {
		gr, ok := rekeyed[k]
		if !ok {
			out = append(out, fmt.Sprintf("row %s missing", k))
			continue
		}
		for _, c := range t.Columns {
			if canonical(wr[c.Name]) != canonical(gr[c.Name]) {
				out = append(out, fmt.Sprintf("row %s column %s: %s, want %s", k, c.Name, gr[c.Name], wr[c.Name]))
			}
		}
		if len(gr) != len(wr) {
			out = append(out, fmt.Sprintf("row %s has %d columns, want %d", k, len(gr), len(wr)))
		}
	}
	for k := range rekeyed {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("row %s should not be there", k))
		}
	}
	slices.Sort(out)
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("... and %d more", len(out)-8))
	}
	return strings.Join(out, "; ")
}

// targetRows reads a table's rows from target.
func (w *world) targetRows(ctx context.Context, target string, t *sink.Table) (rows, error) {
	switch target {
	case "redis":
		s, err := redissink.New(ctx, redissink.Config{Addr: w.redis.Addr()})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		return s.Rows(ctx, t)
	default:
		s, err := pgsink.New(ctx, pgsink.Config{DSN: w.pg.DSN("mirror")})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		return s.Rows(ctx, t)
	}
}

// waitEqual waits until every target holds exactly MariaDB's rows, and
// fails with the differences when they do not within timeout. It returns
// the number of rows compared.
func (w *world) waitEqual(timeout time.Duration) int {
	w.t.Helper()
	return w.waitEqualIn(timeout, "redis", "postgres")
}

// waitEqualIn is waitEqual for some targets.
func (w *world) waitEqualIn(timeout time.Duration, targets ...string) int {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(timeout)
	for {
		var diffs []string
		total := 0
		for _, t := range w.tables {
			want, err := w.sourceRows(ctx, t)
			if err != nil {
				w.t.Fatal(err)
			}
			total += len(want)
			for _, target := range targets {
				got, err := w.targetRows(ctx, target, t)
				if err != nil {
					diffs = append(diffs, fmt.Sprintf("%s %s: %v", target, t, err))
					continue
				}
				if d := diff(t, want, got); d != "" {
					diffs = append(diffs, fmt.Sprintf("%s %s (%d rows, want %d): %s", target, t, len(got), len(want), d))
				}
			}
		}
		if len(diffs) == 0 {
			return total
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the targets do not hold the source's rows after %s:\n%s\n--- redis sync log (tail):\n%s\n--- postgres sync log (tail):\n%s",
				timeout, strings.Join(diffs, "\n"), tail(w.syncLog("redis"), 3000), tail(w.syncLog("postgres"), 3000))
		}
		time.Sleep(time.Second)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestSyncEqualAfterKills: a random workload of inserts, updates (some
// moving a row to another key) and deletes on three tables, one of them
// with every type of the contract, while the producer is killed (-9) five
// times and each sync process (Redis and PostgreSQL) five times: afterwards
// Redis and PostgreSQL hold exactly the rows MariaDB holds, value for value.
func TestSyncEqualAfterKills(t *testing.T) {
	t.Parallel()
	w := newWorld(t, e2e.JetStream)
	w.startProducer()
	w.startSync("redis")
	w.startSync("postgres")
	load := startWorkload(t, w.e.DB.DB(t), time.Now().UnixNano())
	for i := 0; i < 5; i++ {
		time.Sleep(800 * time.Millisecond)
		w.producer.Kill()
		time.Sleep(200 * time.Millisecond)
		w.startProducer()
		time.Sleep(500 * time.Millisecond)
		for _, target := range []string{"redis", "postgres"} {
			w.syncs[target].Kill()
		}
		time.Sleep(200 * time.Millisecond)
		for _, target := range []string{"redis", "postgres"} {
			w.startSync(target)
		}
	}
	time.Sleep(800 * time.Millisecond)
	stats := load.finish()
	n := w.waitEqual(90 * time.Second)
	t.Logf("workload %s; %d rows equal in MariaDB, Redis and PostgreSQL after 5 producer and 5+5 sync kills", stats, n)
	for _, target := range []string{"redis", "postgres"} {
		if log := w.syncLog(target); strings.Contains(log, "panic") || strings.Count(log, "sync started") < 6 {
			t.Fatalf("%s sync log: %d starts (want 6) or a panic:\n%s", target, strings.Count(log, "sync started"), tail(log, 3000))
		}
	}
}

// TestSyncSnapshotThenLive: rows that exist before the producer's first
// start reach both targets through the producer's initial snapshot, and the
// live changes made meanwhile and after follow: the targets end equal to
// MariaDB.
func TestSyncSnapshotThenLive(t *testing.T) {
	t.Parallel()
	w := newWorld(t, e2e.Stan)
	seed := time.Now().UnixNano()
	pre := startWorkload(t, w.e.DB.DB(t), seed)
	time.Sleep(2 * time.Second)
	preStats := pre.finish()
	w.e.Set("Snapshot.Mode", "initial")
	w.e.Set("Snapshot.ChunkRows", 50)
	w.startProducer()
	w.startSync("redis")
	w.startSync("postgres")
	live := startWorkload(t, w.e.DB.DB(t), seed+1)
	time.Sleep(3 * time.Second)
	liveStats := live.finish()
	n := w.waitEqual(90 * time.Second)
	t.Logf("before the snapshot: %s; live: %s; %d rows equal in MariaDB, Redis and PostgreSQL", preStats, liveStats, n)
	for _, target := range []string{"redis", "postgres"} {
		if !strings.Contains(w.syncLog(target), "sync started") {
			t.Fatalf("%s sync did not start:\n%s", target, tail(w.syncLog(target), 3000))
		}
	}
}
