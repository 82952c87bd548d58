package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/faults"
	"github.com/dbsync/dbsync/test/testenv"
)

// awaitDeath waits for the producer to die at its failpoint.
func awaitDeath(c *faults.Cluster, what string) bool {
	select {
	case <-c.Producer.Done():
		return true
	case <-time.After(60 * time.Second):
		c.Expectf(false, "the producer did not die at %s within 60s", what)
		return false
	}
}

// TestFailpoints kills the producer (SIGKILL, from inside) at each failpoint
// of the pipeline under load, then lets a healthy producer catch up.
func TestFailpoints(t *testing.T) {
	t.Parallel()
	points := []struct{ name, desc string }{
		{"after-decode", "killed right after a rows event was decoded and encoded"},
		{"after-publish-before-ack", "killed after a batch was sent, before its acknowledgements arrived"},
		{"after-ack-before-checkpoint", "killed after a batch was acknowledged, before its checkpoint was saved"},
		{"in-checkpoint-write", "killed inside the bolt checkpoint write, before it committed"},
	}
	for _, fp := range points {
		t.Run(fp.name, func(t *testing.T) {
			t.Parallel()
			c := suite.NewCluster(t, faults.Options{Name: "failpoint/" + fp.name, Description: "producer " + fp.desc + " (failpoint, 20th hit), then restarted", Broker: e2e.Stan})
			c.Env.Set("Batch.MaxRows", 16)
			c.Start()
			c.Producer.Kill()
			c.StartProducer("DBSYNC_FAILPOINT=" + fp.name + ":20")
			if awaitDeath(c, fp.name) {
				c.Expectf(strings.Contains(c.ProducerOutput(), "failpoint "+fp.name+" hit"), "the producer died, but not at %s", fp.name)
			}
			c.StartProducer()
			c.Run(2 * time.Second)
			c.Finish()
		})
	}
}

// insertBig writes n rows into table in ONE transaction, 500 per INSERT.
func insertBig(t testing.TB, c *faults.Cluster, table string, first, n int64) {
	db := c.DB.DB(t)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for id := first; id < first+n; id += 500 {
		var args []any
		k := min(500, first+n-id)
		for j := int64(0); j < k; j++ {
			args = append(args, faults.RowValues(id+j)...)
		}
		q := "INSERT INTO " + table + " VALUES " + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?),", int(k)), ",")
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestFailpointInLargeTransaction kills the producer in the middle of a
// 20,000-row transaction: the restart replays it from its start.
func TestFailpointInLargeTransaction(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "failpoint/in-transaction", Broker: e2e.Stan,
		Description: "producer killed in the middle of a 20,000-row transaction (failpoint, 150th rows event inside transactions), then restarted"})
	c.DB.Exec(t, "CREATE DATABASE IF NOT EXISTS fx", "CREATE TABLE fx.big "+faults.WorkloadTableDDL)
	c.Start()
	// Quiet the load so the failpoint counts the large transaction's rows
	// events only.
	c.Workload.Stop()
	c.Producer.Kill()
	c.StartProducer("DBSYNC_FAILPOINT=in-transaction:150")
	insertBig(t, c, "fx.big", 1, 20000)
	if awaitDeath(c, "in-transaction") {
		c.Expectf(c.Broker.Count("fx.big") < 20000, "the whole transaction was published before the failpoint")
	}
	c.StartProducer()
	c.Expectf(c.Broker.WaitDistinct("fx.big", 20000, 2*time.Minute), "the large transaction was not fully delivered")
	c.Finish()
	big := faults.Check(t, c, []string{"fx.big"})
	big.Scenario = c.Name + " (the 20,000-row transaction)"
	c.Report(big)
}

// stopQuiet stops the load, waits until the broker holds every committed
// row, and stops the producer: the binlog and the checkpoint are at rest.
func stopQuiet(t testing.TB, c *faults.Cluster) {
	c.Workload.Stop()
	committed, _ := c.Workload.Reconcile()
	for _, tbl := range c.Workload.Tables {
		c.Broker.WaitDistinct(tbl, len(committed[tbl]), time.Minute)
	}
	if code := c.Producer.Stop(); code != 0 {
		t.Fatalf("producer exit %d after SIGTERM:\n%s", code, lastLines(c.ProducerOutput(), 15))
	}
}

// expectRefusal starts the producer and expects it to exit 1 with every
// want in its output; it returns the problems found.
func expectRefusal(c *faults.Cluster, wants ...string) []string {
	p := c.Env.Start()
	var problems []string
	if code := p.Wait(60 * time.Second); code != 1 {
		problems = append(problems, fmt.Sprintf("the producer exited %d, want 1 (refusal)", code))
	}
	for _, w := range wants {
		if !strings.Contains(p.Output(), w) {
			problems = append(problems, fmt.Sprintf("the refusal lacks %q: %s", w, lastLines(p.Output(), 3)))
		}
	}
	return problems
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// lastGTIDBefore returns the GTID of the transaction before the one that
// holds the newest message of the workload tables (a safe place to resume).
func lastGTIDBefore(t testing.TB, c *faults.Cluster) string {
	var last string
	var seq int64 = -1
	for _, tbl := range c.Workload.Tables {
		msgs := c.Broker.Read(tbl)
		if len(msgs) == 0 {
			continue
		}
		g := msgs[len(msgs)-1].Source.GTID
		parts := strings.Split(g, "-")
		if n, err := strconv.ParseInt(parts[len(parts)-1], 10, 64); err == nil && n > seq {
			seq, last = n, g
		}
	}
	if seq < 1 {
		t.Fatalf("no GTID in the delivered messages")
	}
	parts := strings.Split(last, "-")
	return parts[0] + "-" + parts[1] + "-" + strconv.FormatInt(seq-1, 10)
}

// resumeFromLastPublished does what the refusal tells the operator: set the
// checkpoint to the transaction before the newest published one (replaying
// it whole), start the producer and finish the scenario.
func resumeFromLastPublished(t *testing.T, c *faults.Cluster) {
	code, out, errOut := c.Env.Command("checkpoint", "set", "-gtid", lastGTIDBefore(t, c))
	c.Expectf(code == 0, "checkpoint set: exit %d %s %s", code, out, errOut)
	c.StartProducer()
	c.Finish()
}

// useRedis starts a redis-server and makes it the producer's checkpoint
// store.
func useRedis(t *testing.T, c *faults.Cluster) *testenv.Redis {
	r := testenv.StartRedis(t)
	c.Env.Set("Storage.DaoName", "redis")
	c.Env.Set("Redis.Host", r.Host)
	c.Env.Set("Redis.Port", strconv.Itoa(r.Port))
	return r
}

// TestRedisKilled: the Redis checkpoint store is killed (losing its data:
// no persistence) under load and started again.
func TestRedisKilled(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "redis-killed", Broker: e2e.Stan,
		Description: "Redis checkpoint store killed under load (its data lost), started again 3 s later"})
	r := useRedis(t, c)
	c.Start()
	c.Run(2 * time.Second)
	r.Kill(t)
	c.Run(3 * time.Second)
	r.Start(t)
	c.Run(4 * time.Second)
	c.Finish()
}

// TestRedisKeyDeletedAndCorrupted: with the producer stopped, its Redis
// checkpoint is deleted (JetStream: the producer sees its own changes in
// the stream and refuses a "first start"), then corrupted (refused as
// corrupt); each time the operator sets it, and nothing is lost.
func TestRedisKeyDeletedAndCorrupted(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "redis-key-deleted-and-corrupted", Broker: e2e.JetStream,
		Description: "Redis checkpoint deleted, then corrupted, while the producer is down: both refused; resumed after checkpoint set -gtid"})
	r := useRedis(t, c)
	c.Start()
	c.Run(2 * time.Second)
	stopQuiet(t, c)
	rc := r.Client(t)
	ctx := context.Background()
	rc.Del(ctx, "key")
	for _, p := range expectRefusal(c, "the checkpoint was lost") {
		c.Expectf(false, "key deleted: %s", p)
	}
	rc.Set(ctx, "key", "{not a checkpoint", 0)
	for _, p := range expectRefusal(c, "invalid checkpoint", "dbsync will not guess a position") {
		c.Expectf(false, "key corrupted: %s", p)
	}
	resumeFromLastPublished(t, c)
}

// TestBoltDamaged: with the producer stopped, its bolt file is truncated
// (refused), then replaced by garbage (refused); the operator moves it
// aside and sets the checkpoint; nothing is lost.
func TestBoltDamaged(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "bolt-truncated-and-corrupted", Broker: e2e.Stan,
		Description: "bolt checkpoint file truncated, then overwritten with garbage, while the producer is down: both refused; resumed after moving it aside and checkpoint set -gtid"})
	c.Start()
	c.Run(2 * time.Second)
	stopQuiet(t, c)
	path := filepath.Join(c.Env.Dir, "pos.db")
	if err := os.Truncate(path, 5000); err != nil {
		t.Fatal(err)
	}
	for _, p := range expectRefusal(c, path, "is truncated") {
		c.Expectf(false, "truncated: %s", p)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("garbage ", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range expectRefusal(c, path) {
		c.Expectf(false, "garbage: %s", p)
	}
	if err := os.Rename(path, path+".damaged"); err != nil {
		t.Fatal(err)
	}
	resumeFromLastPublished(t, c)
}

// TestBoltDiskFull: the producer runs with its files limited below the
// bolt file's size (RLIMIT_FSIZE: writes fail with EFBIG as on a full
// disk); checkpoints cannot be saved, nothing is lost; after a restart
// without the limit it catches up.
func TestBoltDiskFull(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "bolt-disk-full", Broker: e2e.Stan,
		Description: "bolt checkpoint writes fail (RLIMIT_FSIZE below the file's size) under load for 5 s; then restarted without the limit"})
	c.Start()
	c.Producer.Kill()
	c.StartProducer("DBSYNC_RLIMIT_FSIZE=8192")
	c.Run(5 * time.Second)
	c.Expectf(strings.Contains(c.ProducerOutput(), "file too large"), "no checkpoint write failed under the limit")
	c.Producer.Kill()
	c.StartProducer()
	c.Run(2 * time.Second)
	c.Finish()
}

// TestBinlogPurgedWhileDown: the checkpoint's binlog is purged while the
// producer is down: refused, naming the position and the oldest binlog.
func TestBinlogPurgedWhileDown(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "binlog-purged-while-down", Broker: e2e.Stan,
		Description: "the checkpoint's binlog purged while the producer is down: start refused with the position, the oldest binlog and the fix"})
	c.Start()
	c.Run(2 * time.Second)
	stopQuiet(t, c)
	cp, err := c.Env.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c.DB.Exec(t, "FLUSH BINARY LOGS", "CREATE TABLE IF NOT EXISTS fx.other (id INT)", "FLUSH BINARY LOGS")
	var current string
	var pos int64
	var a, b string
	db := c.DB.DB(t)
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&current, &pos, &a, &b); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.DB.Exec(t, "PURGE BINARY LOGS TO '"+current+"'")
		var first string
		var size int64
		_ = db.QueryRow("SHOW BINARY LOGS").Scan(&first, &size)
		if first == current || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	problems := expectRefusal(c, cp.File, "oldest binlog the server still has is "+current, "binlog_expire_logs_seconds")
	if after, err := c.Env.Checkpoint(); err != nil || after != cp {
		problems = append(problems, fmt.Sprintf("the checkpoint moved from %s to %s (%v)", cp, after, err))
	}
	c.Report(faults.CheckWith(t, c, c.Tables(), faults.CheckOptions{Notes: problems}))
}

// TestResetMasterWhileDown: RESET MASTER while the producer is down, then
// enough new writes that the checkpoint's file and offset exist again:
// refused as another binlog history.
func TestResetMasterWhileDown(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "reset-master-while-down", Broker: e2e.Stan,
		Description: "RESET MASTER while the producer is down, new writes past the checkpoint's offset: refused as a different history, never resumed at the look-alike position"})
	c.Start()
	c.Run(2 * time.Second)
	stopQuiet(t, c)
	cp, err := c.Env.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c.DB.Exec(t, "RESET MASTER", "CREATE TABLE IF NOT EXISTS fx.other (id INT, pad TEXT)")
	db := c.DB.DB(t)
	for i := 0; i < 400; i++ {
		if _, err := db.Exec(fmt.Sprintf("INSERT INTO fx.other VALUES (%d, REPEAT('x', 2000))", i)); err != nil {
			t.Fatal(err)
		}
		var file string
		var pos int64
		var a, b string
		_ = db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &a, &b)
		if file == cp.File && pos > int64(cp.Pos) {
			break
		}
	}
	problems := expectRefusal(c, "RESET MASTER", cp.File)
	if after, err := c.Env.Checkpoint(); err != nil || after != cp {
		problems = append(problems, fmt.Sprintf("the checkpoint moved from %s to %s (%v)", cp, after, err))
	}
	c.Report(faults.CheckWith(t, c, c.Tables(), faults.CheckOptions{Notes: problems}))
}

// TestTableFilters: an excluded table publishes nothing while the workload
// tables flow; included again (config changed, producer restarted), its
// new rows are published.
func TestTableFilters(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "tables-exclude-then-include", Broker: e2e.Stan,
		Description: "fx.ex excluded by Tables.Exclude: nothing published; included again after a restart: its new rows published"})
	c.DB.Exec(t, "CREATE DATABASE IF NOT EXISTS fx", "CREATE TABLE fx.ex "+faults.WorkloadTableDDL)
	c.Env.Set("Tables.Exclude", []string{"fx.ex"})
	c.Start()
	db := c.DB.DB(t)
	insert := func(from, to int64) {
		for id := from; id <= to; id++ {
			if _, err := db.Exec("INSERT INTO fx.ex VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", faults.RowValues(id)...); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(1, 10)
	c.Run(2 * time.Second)
	c.Expectf(c.Broker.Count("fx.ex") == 0, "the excluded table published %d messages", c.Broker.Count("fx.ex"))
	c.Producer.Stop()
	c.Env.Set("Tables.Exclude", []string{})
	c.StartProducer()
	insert(11, 20)
	c.Expectf(c.Broker.WaitDistinct("fx.ex", 10, time.Minute), "the included table's new rows were not published")
	msgs := c.Broker.Read("fx.ex")
	c.Expectf(len(msgs) == 10 && msgs[0].After != nil && string(msgs[0].After["id"]) == "11",
		"fx.ex after re-including: %d messages (want ids 11..20 only)", len(msgs))
	c.Finish()
}

// TestSchemaChangesWhileLagging: rows are written, then the table is
// altered (ADD, DROP, a column moved with AFTER, RENAME, a type change)
// while the producer is down; when it catches up, every row is published
// with the columns it was written with, never shifted onto other names.
func TestSchemaChangesWhileLagging(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "schema-changes-while-lagging", Broker: e2e.Stan,
		Description: "ADD COLUMN, DROP COLUMN, a column moved with AFTER, RENAME COLUMN and a type change while the producer is down: rows decoded with the columns they were written with"})
	c.DB.Exec(t, "CREATE DATABASE IF NOT EXISTS sc", "CREATE TABLE sc.t (id INT PRIMARY KEY, a INT, b VARCHAR(10), c INT)")
	c.Start()
	c.Workload.Stop()
	if code := c.Producer.Stop(); code != 0 {
		t.Fatalf("producer exit %d after SIGTERM:\n%s", code, lastLines(c.ProducerOutput(), 15))
	}
	c.DB.Exec(t,
		"INSERT INTO sc.t VALUES (1, 10, 'one', 100)",
		"ALTER TABLE sc.t ADD COLUMN d INT DEFAULT 7",
		"INSERT INTO sc.t VALUES (2, 20, 'two', 200, 2000)",
		"ALTER TABLE sc.t DROP COLUMN a",
		"INSERT INTO sc.t VALUES (3, 'three', 300, 3000)",
		"ALTER TABLE sc.t MODIFY COLUMN d INT AFTER id",
		"INSERT INTO sc.t VALUES (4, 4000, 'four', 400)",
		"ALTER TABLE sc.t RENAME COLUMN c TO cc",
		"INSERT INTO sc.t VALUES (5, 5000, 'five', 500)",
		"ALTER TABLE sc.t MODIFY COLUMN cc BIGINT UNSIGNED",
		"INSERT INTO sc.t VALUES (6, 6000, 'six', 18446744073709551615)")
	want := []string{
		`{"id":1,"a":10,"b":"one","c":100}`,
		`{"id":2,"a":20,"b":"two","c":200,"d":2000}`,
		`{"id":3,"b":"three","c":300,"d":3000}`,
		`{"id":4,"d":4000,"b":"four","c":400}`,
		`{"id":5,"d":5000,"b":"five","cc":500}`,
		`{"id":6,"d":6000,"b":"six","cc":18446744073709551615}`,
	}
	c.StartProducer()
	r := faults.Result{Scenario: c.Name, Committed: len(want), OK: true}
	if !c.Broker.WaitDistinct("sc.t", len(want), time.Minute) {
		r.Note = "not every row was delivered"
	}
	got := c.Broker.Read("sc.t")
	r.Delivered = len(got)
	for i, w := range want {
		if i >= len(got) {
			r.Lost++
			continue
		}
		if s := afterJSON(t, got[i].After, strings.Split(keysOf(w), ",")); s != w {
			r.Note += fmt.Sprintf("; row %d published as %s, want %s", i+1, s, w)
		}
	}
	r.OK = r.Lost == 0 && r.Note == "" && len(got) == len(want)
	c.Report(r)
	// The workload tables flowed before the ALTERs: check them too.
	c.Report(faults.Check(t, c, c.Tables()))
}

// TestIdleConnectionsKilledByWaitTimeout: with wait_timeout at 2 s the
// server closes the producer's idle connections (the one for table
// definitions among them) while nothing is written; then writes resume,
// including to a table the producer has not seen yet.
func TestIdleConnectionsKilledByWaitTimeout(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "idle-connections-killed-by-wait-timeout", Broker: e2e.Stan,
		Description: "wait_timeout=2 closes the producer's idle connections during 6 s without writes; then writes resume, to a new table too"})
	c.DB.Exec(t, "SET GLOBAL wait_timeout = 2", "SET GLOBAL interactive_timeout = 2")
	c.Start()
	c.Workload.Stop()
	c.Run(6 * time.Second) // idle: the server closes idle connections
	c.DB.Exec(t, "CREATE TABLE fx.late "+faults.WorkloadTableDDL)
	db := c.DB.DB(t)
	for id := int64(1); id <= 50; id++ {
		if _, err := db.Exec("INSERT INTO fx.late VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", faults.RowValues(id)...); err != nil {
			t.Fatal(err)
		}
	}
	c.Expectf(c.Broker.WaitDistinct("fx.late", 50, time.Minute), "the new table's rows were not delivered after the idle period")
	c.Finish()
	c.Report(faults.Check(t, c, []string{"fx.late"}))
}

// keysOf lists the keys of a flat JSON object in order.
func keysOf(obj string) string {
	dec := json.NewDecoder(strings.NewReader(obj))
	dec.UseNumber()
	var keys []string
	_, _ = dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		_ = dec.Decode(&v)
	}
	return strings.Join(keys, ",")
}

// afterJSON renders img with exactly the given keys in that order, and
// fails when img has other keys.
func afterJSON(t *testing.T, img map[string]json.RawMessage, keys []string) string {
	t.Helper()
	if len(img) != len(keys) {
		t.Errorf("image has columns %v, want %v", mapKeys(img), keys)
	}
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + k + `":`)
		b.Write(img[k])
	}
	b.WriteString("}")
	return b.String()
}

func mapKeys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
