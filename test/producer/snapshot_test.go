package producer_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
)

// fillTable inserts rows ids 0, 2, 4, ... (n of them) into table (id, v, s).
func fillTable(t *testing.T, e *e2e.Env, table string, n int) {
	t.Helper()
	e.DB.Exec(t, "CREATE TABLE "+table+" (id INT NOT NULL PRIMARY KEY, v INT NOT NULL, s VARCHAR(20))")
	for i := 0; i < n; i += 1000 {
		var vals []string
		for j := i; j < min(i+1000, n); j++ {
			vals = append(vals, fmt.Sprintf("(%d, 0, 'r%d')", 2*j, j))
		}
		e.DB.Exec(t, "INSERT INTO "+table+" VALUES "+strings.Join(vals, ","))
	}
}

// writer inserts, updates and deletes random rows of table (id, v, s) over
// ids 0..2*span until stopped.
type writer struct {
	stop   atomic.Bool
	wg     sync.WaitGroup
	writes atomic.Int64
}

func startWriter(t *testing.T, db *sql.DB, table string, span, workers int) *writer {
	w := &writer{}
	for n := range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(n), 11))
			for !w.stop.Load() {
				id := rng.IntN(2 * span)
				var err error
				switch rng.IntN(4) {
				case 0:
					_, err = db.Exec("INSERT INTO "+table+" VALUES (?, 1, 'new') ON DUPLICATE KEY UPDATE v = v + 1", id)
				case 1, 2:
					_, err = db.Exec("UPDATE "+table+" SET v = v + 1, s = ? WHERE id = ?", "u"+strconv.Itoa(rng.IntN(1000)), id)
				default:
					_, err = db.Exec("DELETE FROM "+table+" WHERE id = ?", id)
				}
				if err != nil && strings.Contains(err.Error(), "Error 1213") {
					continue // a deadlock between the writers: InnoDB rolled one back
				}
				if err != nil {
					t.Errorf("write to %s: %v", table, err)
					return
				}
				w.writes.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return w
}

func (w *writer) finish() int64 {
	w.stop.Store(true)
	w.wg.Wait()
	return w.writes.Load()
}

// applyAll applies a subject's messages in order, as a consumer would
// (insert and read upsert, update replaces, delete removes), keyed by id.
func applyAll(t *testing.T, envs []*envelope.Envelope) (rows map[int64]string, reads int) {
	t.Helper()
	rows = map[int64]string{}
	for _, env := range envs {
		switch env.Type {
		case envelope.TypeInsert, envelope.TypeRead:
			rows[e2e.IntField(t, env.After, "id")] = rowImage(t, env.After)
			if env.Type == envelope.TypeRead {
				reads++
			}
		case envelope.TypeUpdate:
			delete(rows, e2e.IntField(t, env.Before, "id"))
			rows[e2e.IntField(t, env.After, "id")] = rowImage(t, env.After)
		case envelope.TypeDelete:
			delete(rows, e2e.IntField(t, env.Before, "id"))
		}
	}
	return rows, reads
}

func rowImage(t *testing.T, img map[string]json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(img["s"], &s); err != nil && string(img["s"]) != "null" {
		t.Fatalf("column s of %v: %v", img, err)
	}
	return fmt.Sprintf("v=%s s=%s", img["v"], s)
}

// selectRows reads table (id, v, s) as applyAll keys it.
func selectRows(t *testing.T, db *sql.DB, table string) map[int64]string {
	t.Helper()
	rs, err := db.Query("SELECT id, v, IFNULL(s, '') FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	out := map[int64]string{}
	for rs.Next() {
		var id, v int64
		var s string
		if err := rs.Scan(&id, &v, &s); err != nil {
			t.Fatal(err)
		}
		out[id] = fmt.Sprintf("v=%d s=%s", v, s)
	}
	return out
}

func sameRows(t *testing.T, what string, got, want map[int64]string) {
	t.Helper()
	var diffs []string
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			diffs = append(diffs, fmt.Sprintf("id %d: consumer has %q (present %v), table has %q", id, g, ok, w))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("id %d: consumer has %q, the table has no such row", id, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s: the consumer's table differs from a SELECT in %d rows, e.g.:\n%s", what, len(diffs), strings.Join(diffs[:min(10, len(diffs))], "\n"))
	}
}

// TestSnapshotKill9UnderWrites takes the initial snapshot of a 100k-row
// table while writers insert, update and delete its rows, killing the
// producer with SIGKILL five times during it: each restart resumes at a
// chunk, and a consumer applying the subject in order ends with exactly the
// rows a SELECT returns.
func TestSnapshotKill9UnderWrites(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{e2e.Stan, e2e.JetStream} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			e := e2e.NewEnvBroker(t, producerBin, broker)
			e.DB.Exec(t, "CREATE DATABASE snap")
			const rows = 100_000
			fillTable(t, e, "snap.items", rows)
			e.Set("Snapshot.Mode", "initial")
			e.Set("Snapshot.ChunkRows", 1000)
			e.Set("Snapshot.Pause", "70ms")
			e.Set("Log.Level", "info")
			w := startWriter(t, e.DB.DB(t), "snap.items", rows, 2)
			resumed := regexp.MustCompile(`snapshot resumed from the checkpoint.*next_chunk=(\d+)`)
			kills := 0
			for kills < 5 {
				p := e.Start()
				e2e.WaitLog(t, p, "binlog stream started")
				time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
				out := p.Output()
				if strings.Contains(out, "snapshot complete") {
					t.Fatalf("the snapshot completed before kill %d: slow it down (Snapshot.Pause)", kills+1)
				}
				p.Kill()
				kills++
				if kills > 1 {
					m := resumed.FindStringSubmatch(out)
					if m == nil {
						t.Fatalf("restart %d did not resume the snapshot from the checkpoint:\n%s", kills, out)
					}
					if n, _ := strconv.Atoi(m[1]); n <= 1 {
						t.Errorf("restart %d resumed at chunk %s, not after the chunks already published", kills, m[1])
					}
					t.Logf("restart %d resumed at chunk %s", kills, m[1])
				}
			}
			// A graceful stop mid-snapshot keeps its progress too.
			p := e.Start()
			e2e.WaitLog(t, p, "snapshot resumed from the checkpoint")
			time.Sleep(300 * time.Millisecond)
			if code := p.Stop(); code != 0 {
				t.Fatalf("SIGTERM mid-snapshot: exit %d:\n%s", code, p.Output())
			}
			cp, err := e.Checkpoint()
			if err != nil || cp.Snapshot == nil || cp.Snapshot.Current() == nil || cp.Snapshot.Current().Chunks == 0 {
				t.Fatalf("after SIGTERM mid-snapshot the checkpoint holds %+v (%v), want the snapshot's progress", cp.Snapshot, err)
			}
			stoppedAt := cp.Snapshot.Current().Chunks
			p = e.Start()
			e2e.WaitLog(t, p, "snapshot resumed from the checkpoint")
			if m := resumed.FindStringSubmatch(p.Output()); m == nil || m[1] != strconv.Itoa(stoppedAt+1) {
				t.Errorf("after SIGTERM at chunk %d the restart resumed at %v", stoppedAt, m)
			}
			e2e.WaitLog(t, p, "snapshot complete")
			writes := w.finish()
			e.DB.Exec(t, "CREATE TABLE snap.done (id INT PRIMARY KEY)", "INSERT INTO snap.done VALUES (1)")
			e.WaitFor("snap.done", 1, time.Minute)
			if code := p.Stop(); code != 0 {
				t.Fatalf("final run exit %d:\n%s", code, p.Output())
			}
			got, reads := applyAll(t, e.Read("snap.items"))
			sameRows(t, "snap.items", got, selectRows(t, e.DB.DB(t), "snap.items"))
			t.Logf("%s: 5 kills and a SIGTERM during the snapshot, %d read rows stored, %d writes during it; the consumer's table equals the source", broker, reads, writes)
			if reads < rows/2 {
				t.Errorf("only %d read rows stored for a %d-row table", reads, rows)
			}
		})
	}
}

// TestInitialSnapshotOnce: Snapshot.Mode initial on a first start publishes
// the included tables' rows (every kind of key), then the changes; a
// restart takes no second snapshot.
func TestInitialSnapshotOnce(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{e2e.Stan, e2e.JetStream} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			e := e2e.NewEnvBroker(t, producerBin, broker)
			e.DB.Exec(t, "CREATE DATABASE i", "CREATE DATABASE skip")
			fillTable(t, e, "i.a", 2500)
			e.DB.Exec(t, "CREATE TABLE i.nokey (id INT, v INT, s VARCHAR(20))",
				"INSERT INTO i.nokey VALUES (1, 1, 'x'), (2, 2, 'y')",
				"CREATE TABLE skip.t (id INT PRIMARY KEY)", "INSERT INTO skip.t VALUES (1)")
			e.Set("Snapshot.Mode", "initial")
			e.Set("Snapshot.ChunkRows", 1000)
			e.Set("Tables", map[string]any{"Exclude": []string{"skip.*"}})
			p := e.Start()
			e2e.WaitLog(t, p, "snapshot complete")
			if !strings.Contains(p.Output(), "table has no primary key") {
				t.Errorf("no warning about i.nokey:\n%s", p.Output())
			}
			if !regexp.MustCompile(`snapshot: table done.*estimated_rows=\d+.*percent=\d+.*rows_per_sec=\d+.*table=i\.a`).MatchString(p.Output()) {
				t.Errorf("no progress line for i.a with rows, estimate, percent and rate:\n%s", p.Output())
			}
			e.DB.Exec(t, "INSERT INTO i.a VALUES (1, 5, 'live')")
			e.WaitFor("i.a", 2501, time.Minute)
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			envs := e.Read("i.a")
			got, reads := applyAll(t, envs)
			sameRows(t, "i.a", got, selectRows(t, e.DB.DB(t), "i.a"))
			if reads != 2500 || envs[len(envs)-1].Type != envelope.TypeInsert {
				t.Fatalf("i.a: %d reads then %s, want 2500 reads then the insert", reads, envs[len(envs)-1].Type)
			}
			chunks := map[int]bool{}
			for _, env := range envs[:reads] {
				ref := env.Source.Snapshot
				chunks[ref.Chunk] = true
				if ref.Last != (ref.Chunk == 3) || ref.ID == "" || ref.ID != envs[0].Source.Snapshot.ID {
					t.Fatalf("read %s: snapshot %+v (want chunks 1-3 of one snapshot, the last flagged)", env.ID, ref)
				}
			}
			if len(chunks) != 3 {
				t.Errorf("i.a came in %d chunks, want 3", len(chunks))
			}
			if n := e.Count("i.nokey"); n != 2 {
				t.Errorf("i.nokey holds %d messages, want its 2 rows", n)
			}
			if n := e.Count("skip.t"); n != 0 {
				t.Errorf("the excluded skip.t got %d messages", n)
			}
			// A restart streams on: no second snapshot.
			p = e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			e.DB.Exec(t, "INSERT INTO i.a VALUES (3, 5, 'after restart')")
			e.WaitFor("i.a", 2502, time.Minute)
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			if out := p.Output(); strings.Contains(out, "snapshot started") || strings.Contains(out, "snapshot resumed") {
				t.Errorf("the restart took a snapshot again:\n%s", out)
			}
			if n := e.Count("i.a"); n != 2502 {
				t.Errorf("i.a holds %d messages after the restart, want 2502", n)
			}
			cp, err := e.Checkpoint()
			if err != nil || cp.Snapshot != nil {
				t.Errorf("checkpoint %+v (%v): want no snapshot left in it", cp, err)
			}
		})
	}
}

// TestSnapshotCommand starts a snapshot of two tables on a running
// producer while another table streams: both tables' rows arrive, the
// live table's changes keep flowing meanwhile; status and cancel work, and
// bad requests are refused with the reason.
func TestSnapshotCommand(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{e2e.Stan, e2e.JetStream} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			e := e2e.NewEnvBroker(t, producerBin, broker)
			e.DB.Exec(t, "CREATE DATABASE c")
			fillTable(t, e, "c.x", 3000)
			fillTable(t, e, "c.y", 2000)
			e.DB.Exec(t, "CREATE TABLE c.live (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))")
			e.Set("Snapshot.ChunkRows", 250)
			e.Set("Snapshot.Pause", "20ms")
			p := e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			db := e.DB.DB(t)
			stopLive := make(chan struct{})
			liveDone := make(chan int)
			go func() {
				n := 0
				defer func() { liveDone <- n }()
				for {
					select {
					case <-stopLive:
						return
					case <-time.After(5 * time.Millisecond):
					}
					if _, err := db.Exec("INSERT INTO c.live (at) VALUES (NOW(6))"); err != nil {
						t.Errorf("live insert: %v", err)
						return
					}
					n++
				}
			}()
			for _, bad := range [][]string{{"snapshot", "start", "c.nosuch"}, {"snapshot", "start", "nodot"}, {"snapshot", "cancel"}} {
				if code, _, stderr := e.Command(bad...); code != 1 || !strings.Contains(stderr, "refused") {
					t.Errorf("%v: exit %d, stderr %s", bad, code, stderr)
				}
			}
			code, stdout, stderr := e.Command("snapshot", "start", "c.x", "c.y")
			if code != 0 {
				t.Fatalf("snapshot start: exit %d\n%s%s\n%s", code, stdout, stderr, p.Output())
			}
			if code, _, stderr := e.Command("snapshot", "start", "c.x"); code != 1 || !strings.Contains(stderr, "is running") {
				t.Errorf("a second start while one runs: exit %d, %s", code, stderr)
			}
			_, status, _ := e.Command("snapshot", "status")
			if !strings.Contains(status, "c.x") || !strings.Contains(status, "c.y") {
				t.Errorf("status while running:\n%s", status)
			}
			e2e.WaitLog(t, p, "snapshot complete")
			close(stopLive)
			live := <-liveDone
			e.WaitFor("c.live", live, time.Minute)
			_, status, _ = e.Command("snapshot", "status")
			if !strings.Contains(status, "no snapshot running") || !strings.Contains(status, "done") {
				t.Errorf("status after the snapshot:\n%s", status)
			}
			for sample, want := range map[string]float64{
				`dbsync_snapshot_rows_total{db="c",table="x"}`: 3000, `dbsync_snapshot_rows_total{db="c",table="y"}`: 2000,
				"dbsync_snapshot_running": 0, "dbsync_snapshot_remaining_rows": 0,
			} {
				if got := scrape(t, e.HTTPAddr, sample); got != want {
					t.Errorf("%s = %v, want %v", sample, got, want)
				}
			}
			// The live table flowed during the snapshot: some of its
			// changes sit between the first and the last read row.
			xs := e.Read("c.x")
			first, last := xs[0].Source, xs[len(xs)-1].Source
			between := 0
			for _, env := range e.Read("c.live") {
				if after(env.Source, first) && after(last, env.Source) {
					between++
				}
			}
			if between == 0 {
				t.Errorf("no c.live change was published between the snapshot's first and last row of c.x (%s .. %s)", xs[0].ID, xs[len(xs)-1].ID)
			}
			for _, table := range []string{"c.x", "c.y"} {
				got, reads := applyAll(t, e.Read(table))
				sameRows(t, table, got, selectRows(t, db, table))
				if reads != map[string]int{"c.x": 3000, "c.y": 2000}[table] {
					t.Errorf("%s: %d reads", table, reads)
				}
			}
			t.Logf("%s: %d live changes, %d of them published while the snapshot ran", broker, live, between)

			// Cancel: the progress leaves the checkpoint.
			e.Command("snapshot", "start", "c.x")
			if code, stdout, stderr := e.Command("snapshot", "cancel"); code != 0 || !strings.Contains(stdout, "cancelling") {
				t.Fatalf("cancel: exit %d %s %s", code, stdout, stderr)
			}
			e2e.WaitLog(t, p, "snapshot cancelled")
			e.DB.Exec(t, "INSERT INTO c.live (at) VALUES (NOW(6))")
			e.WaitFor("c.live", live+1, time.Minute)
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			if cp, err := e.Checkpoint(); err != nil || cp.Snapshot != nil {
				t.Errorf("checkpoint after the cancel: %+v (%v), want no snapshot state", cp.Snapshot, err)
			}
		})
	}
}

// after reports whether a comes after b (same binlog history).
func after(a, b envelope.Source) bool {
	if a.File != b.File {
		return a.File > b.File
	}
	if a.Pos != b.Pos {
		return a.Pos > b.Pos
	}
	return a.Row > b.Row
}

// TestKeylessTableRefused: with Snapshot.Keyless refuse, an initial
// snapshot that would have to read a table without a usable key in one go
// does not start; the error names the table and the fixes.
func TestKeylessTableRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.DB.Exec(t, "CREATE DATABASE k", "CREATE TABLE k.nokey (a INT, b INT NULL, UNIQUE KEY (b))", "CREATE TABLE k.ok (id INT PRIMARY KEY)")
	e.Set("Snapshot.Mode", "initial")
	e.Set("Snapshot.Keyless", "refuse")
	p := e.Start()
	if code := p.Wait(time.Minute); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
	}
	mustContain(t, p.Output(), "k.nokey", "no primary key", "add a primary key", "Snapshot.Keyless")
	if strings.Contains(p.Output(), "k.ok:") {
		t.Errorf("the refusal names k.ok, which has a key:\n%s", p.Output())
	}
	if _, err := e.Checkpoint(); err == nil {
		t.Error("a refused first start saved a checkpoint")
	}
}
