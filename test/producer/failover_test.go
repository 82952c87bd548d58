package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// failoverTables is how many tables the failover tests write.
const failoverTables = 3

// failoverEnv is a producer environment on broker whose source is a
// MariaDB primary with a GTID replica (log_slave_updates=ON) listed in
// Mysql.Hosts, with the load's database wl on both.
func failoverEnv(t *testing.T, broker string) (*e2e.Env, *testenv.MariaDB) {
	e := e2e.NewEnvBroker(t, producerBin, broker)
	e.DB.Exec(t, "CREATE DATABASE wl")
	replica := testenv.StartMariaDBReplica(t, e.DB, testenv.MariaDBOptions{})
	e.Set("Mysql.Hosts", []string{replica.Addr()})
	e.Set("Batch.MaxRows", 32)
	return e, replica
}

// TestSourceFailover streams a MariaDB primary under a write load on three
// tables, with an SDK consumer on every table. The replica catches up, the
// primary is killed (SIGKILL) and the replica promoted; the load goes on
// there. The producer, with the replica in Mysql.Hosts, connects to it,
// finds its place by the checkpoint's GTID state and goes on: every
// committed row is stored once, in commit order (JetStream; NATS Streaming
// may store an in-order replay, under the new history), and the SDK
// consumer hands over each change exactly once, in order, across the
// switch.
func TestSourceFailover(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{e2e.JetStream, e2e.Stan} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			e, replica := failoverEnv(t, broker)
			p := e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			consumer := startFailoverConsumer(t, e)
			l := e2e.StartLoad(t, e.DB.DB(t), failoverTables)
			time.Sleep(1500 * time.Millisecond)
			before := l.Finish()
			replica.WaitCaughtUp(t, e.DB)
			e.DB.Kill(t)
			replica.Promote(t)
			e2e.WaitLog(t, p, "source failover")
			l = e2e.StartLoad(t, replica.DB(t), failoverTables)
			time.Sleep(1500 * time.Millisecond)
			after := l.Finish()

			committed := make([][]int64, failoverTables)
			for i := range committed {
				committed[i] = append(append([]int64(nil), before[i]...), after[i]...)
				if len(before[i]) == 0 || len(after[i]) == 0 {
					t.Fatalf("table t%d: %d rows committed before the failover, %d after; want some of each", i, len(before[i]), len(after[i]))
				}
			}
			for i := range committed {
				waitRowIDs(t, e, fmt.Sprintf("wl.t%d", i), committed[i], 2*time.Minute)
			}
			if got := scrape(t, e.HTTPAddr, "dbsync_source_failovers_total"); got != 1 {
				t.Errorf("dbsync_source_failovers_total = %v, want 1", got)
			}
			if code := p.Stop(); code != 0 {
				t.Fatalf("producer exit %d:\n%s", code, p.Output())
			}
			for _, line := range strings.Split(p.Output(), "\n") {
				if strings.Contains(line, "source failover") || strings.Contains(line, "GTID set") || strings.Contains(line, "before the failover") {
					t.Logf("producer: %s", line)
				}
			}
			cp, err := e.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			if cp.ServerID != 2 || cp.Continues == "" || !strings.HasPrefix(cp.File, "replica-bin.") {
				t.Errorf("checkpoint after the failover %+v: want the replica's binlog, server_id 2 and the history it continues", cp)
			}
			replays, total := 0, 0
			for i := range committed {
				subject := fmt.Sprintf("wl.t%d", i)
				replays += checkAcrossFailover(t, subject, committed[i], e.Read(subject), broker == e2e.JetStream)
				consumer.check(t, subject, committed[i])
				total += len(committed[i])
			}
			t.Logf("%s: %d rows committed (%d on the primary, %d on the promoted replica); the stream holds each once in commit order "+
				"plus %d replayed message(s); the SDK consumer handed each over once, in order",
				broker, total, total-countRows(after), countRows(after), replays)
		})
	}
}

// TestSourceFailoverRefusesABehindReplica: the replica stops replicating,
// the primary commits and the producer publishes (and checkpoints) those
// transactions, then the primary dies and the replica, behind, is
// promoted. The producer must not go on there: it stops with an error that
// names the missing GTIDs and the fix, and publishes nothing of the
// replica's history.
func TestSourceFailoverRefusesABehindReplica(t *testing.T) {
	t.Parallel()
	e, replica := failoverEnv(t, e2e.JetStream)
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	replica.Exec(t, "STOP SLAVE")
	l := e2e.StartLoad(t, e.DB.DB(t), 1)
	time.Sleep(500 * time.Millisecond)
	committed := l.Finish()[0]
	waitRowIDs(t, e, "wl.t0", committed, time.Minute)
	var last string
	if err := e.DB.DB(t).QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&last); err != nil {
		t.Fatal(err)
	}
	// The producer logs each checkpoint it saves (log level debug).
	e2e.WaitLog(t, p, "(gtid "+last+")\"")
	stored := len(e.Read("wl.t0"))
	e.DB.Kill(t)
	replica.Promote(t)
	replica.Exec(t, "CREATE TABLE wl.t0 (id BIGINT PRIMARY KEY, payload VARCHAR(64))", "INSERT INTO wl.t0 VALUES (1000000, 'after the failover')")
	if code := p.Wait(2 * time.Minute); code != 1 {
		t.Fatalf("producer exit %d, want 1:\n%s", code, p.Output())
	}
	out := p.Output()
	for _, want := range []string{"does not hold every transaction the checkpoint has published", "missing: domain 0", "log_slave_updates", "fix="} {
		if !strings.Contains(out, want) {
			t.Errorf("the producer's refusal does not say %q:\n%s", want, tailLines(out, 15))
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=error") {
			t.Logf("refusal: %s", line)
		}
	}
	if got := len(e.Read("wl.t0")); got != stored {
		t.Errorf("the stream went from %d to %d messages after the refusal", stored, got)
	}
}

// tailLines is the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func countRows(ids [][]int64) int {
	n := 0
	for _, t := range ids {
		n += len(t)
	}
	return n
}

// rowID is the id column of a change's row.
func rowID(t *testing.T, e *envelope.Envelope) int64 {
	img := e.After
	if img == nil {
		img = e.Before
	}
	return e2e.IntField(t, img, "id")
}

// waitRowIDs waits until subject holds a change of every id in want.
func waitRowIDs(t *testing.T, e *e2e.Env, subject string, want []int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		have := map[int64]bool{}
		for _, env := range e.Read(subject) {
			have[rowID(t, env)] = true
		}
		missing := 0
		for _, id := range want {
			if !have[id] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d committed rows not stored within %s", subject, missing, len(want), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkAcrossFailover checks a subject's stored changes against the ids
// committed, in commit order, across a failover: a message at a coordinate
// of its history seen before is a replay (it must go on in order); every
// other message must be the next committed id. With exact, no replay at
// all may be stored under a new coordinate. It returns the replays.
func checkAcrossFailover(t *testing.T, subject string, committed []int64, got []*envelope.Envelope, exact bool) int {
	t.Helper()
	type coord struct {
		history, file string
		pos           uint32
		row           int
	}
	seen := map[coord]bool{}
	seenID := map[int64]bool{}
	var order []int64
	replays := 0
	for _, e := range got {
		c := coord{e.Source.History, e.Source.File, e.Source.Pos, e.Source.Row}
		id := rowID(t, e)
		switch {
		case seen[c]:
			replays++
			continue
		case seenID[id] && !exact:
			replays++ // republished under the new history, dropped by the SDK
			continue
		}
		seen[c], seenID[id] = true, true
		order = append(order, id)
	}
	if !slices.Equal(order, committed) {
		first := 0
		for first < min(len(order), len(committed)) && order[first] == committed[first] {
			first++
		}
		t.Errorf("%s: stored %d distinct changes, %d committed; they differ from position %d on (stored %v, committed %v)",
			subject, len(order), len(committed), first, order[first:min(first+5, len(order))], committed[first:min(first+5, len(committed))])
	}
	return replays
}

// failoverConsumer is an SDK client subscribed to the failover tables,
// recording the ids handed over.
type failoverConsumer struct {
	mu     sync.Mutex
	handed map[string][]int64
	errs   []error
}

func startFailoverConsumer(t *testing.T, e *e2e.Env) *failoverConsumer {
	t.Helper()
	cfg := client.Config{ClientID: "failover-consumer", RetryMin: 50 * time.Millisecond, RetryMax: time.Second}
	switch e.Broker {
	case e2e.JetStream:
		cfg.Broker, cfg.Host, cfg.Stream = client.BrokerJetStream, e.NATS.URL(), "DBSYNC"
	default:
		cfg.Broker, cfg.Host, cfg.Port, cfg.ClusterID = client.BrokerStan, "nats://"+e.Stan.Host, strconv.Itoa(e.Stan.Port), e.Stan.ClusterID
	}
	k := &failoverConsumer{handed: map[string][]int64{}}
	cfg.OnError = func(err error) {
		k.mu.Lock()
		k.errs = append(k.errs, err)
		k.mu.Unlock()
	}
	cl, err := client.NewClient(cfg)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	for i := 0; i < failoverTables; i++ {
		subject := fmt.Sprintf("wl.t%d", i)
		_, err := cl.SubscribeEnvelope("wl", fmt.Sprintf("t%d", i), func(_ context.Context, env *envelope.Envelope, _ []byte) error {
			var id int64
			if err := json.Unmarshal(env.After["id"], &id); err != nil {
				return err
			}
			k.mu.Lock()
			k.handed[subject] = append(k.handed[subject], id)
			k.mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatalf("consumer: subscribe %s: %v", subject, err)
		}
	}
	return k
}

// check waits (up to a minute) until the consumer handed over as many
// changes of subject as committed, then requires exactly committed, in
// order, and no history-change report.
func (k *failoverConsumer) check(t *testing.T, subject string, committed []int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		k.mu.Lock()
		got := append([]int64(nil), k.handed[subject]...)
		errs := append([]error(nil), k.errs...)
		k.mu.Unlock()
		if len(got) >= len(committed) || time.Now().After(deadline) {
			time.Sleep(300 * time.Millisecond) // a duplicate would come right after
			k.mu.Lock()
			got = append([]int64(nil), k.handed[subject]...)
			k.mu.Unlock()
			if !slices.Equal(got, committed) {
				t.Errorf("%s: the SDK consumer handed over %d changes, %d committed (handed %v..., committed %v...)",
					subject, len(got), len(committed), got[:min(5, len(got))], committed[:min(5, len(committed))])
			}
			for _, err := range errs {
				var he *client.HistoryChangeError
				if errors.As(err, &he) {
					t.Errorf("%s: the SDK reported a history change across the failover: %v", subject, err)
				}
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
