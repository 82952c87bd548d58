package bench

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/testenv"
)

// latencyTableName is the table the latency measurement writes to.
const latencyTableName = "lat"

// latencyDrain bounds the wait for the last deliveries after the last
// commit.
const latencyDrain = 30 * time.Second

// latencyResult is one latency measurement.
type latencyResult struct {
	Run    int
	Broker string
	// Commits is how many single-row transactions were written; Rate the
	// achieved commits per second.
	Commits int
	Rate    float64
	// P50, P99 and Max are of the time from COMMIT returning in the writer
	// to the message arriving at the subscriber.
	P50, P99, Max time.Duration
	// IngressP50 and IngressP99 are of the time from COMMIT returning to
	// the message reaching the broker (JetStream only; -1 otherwise).
	IngressP50, IngressP99 time.Duration
}

// deliveries records when the message of each id arrived.
type deliveries struct {
	mu       sync.Mutex
	at       []time.Time
	received int
	all      chan struct{}
	err      error
}

func newDeliveries(n int) *deliveries {
	return &deliveries{at: make([]time.Time, n), all: make(chan struct{})}
}

// add records the delivery of one envelope at time at. The first
// undecodable envelope or unexpected id is kept as the error.
func (d *deliveries) add(data []byte, at time.Time) {
	id, err := envelopeID(data)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil && (id < 0 || id >= int64(len(d.at))) {
		err = fmt.Errorf("delivered id %d is outside 0..%d", id, len(d.at)-1)
	}
	if err != nil {
		if d.err == nil {
			d.err = err
		}
		return
	}
	if !d.at[id].IsZero() {
		return // a redelivery: the first delivery counts
	}
	d.at[id] = at
	d.received++
	if d.received == len(d.at) {
		close(d.all)
	}
}

// envelopeID returns the "id" column of an insert envelope's after image.
func envelopeID(data []byte) (int64, error) {
	env, err := envelope.Decode(data)
	if err != nil {
		return 0, err
	}
	raw, ok := env.After["id"]
	if !ok {
		return 0, fmt.Errorf("envelope %s has no after.id", env.ID)
	}
	id, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("envelope %s: after.id %s: %w", env.ID, raw, err)
	}
	return id, nil
}

// measureLatency starts the producer (no checkpoint: it starts at the
// current position) on a fresh broker, subscribes to the latency table's
// subject, then writes rate single-row commits per second for duration
// from one connection, recording when each COMMIT returned, and waits for
// every message. It returns p50, p99 and max of delivery minus commit time.
func measureLatency(ctx context.Context, parent *benchTB, bin string, db *testenv.MariaDB, brokerName string, rate float64, duration time.Duration, profileDir string) (latencyResult, error) {
	tb := parent.scope("latency-" + brokerName)
	defer tb.close()
	fail := func(err error) (latencyResult, error) {
		return latencyResult{}, fmt.Errorf("latency on %s: %w", brokerName, err)
	}
	full := benchDB + "." + latencyTableName
	db.Exec(tb, "DROP TABLE IF EXISTS "+full, "CREATE TABLE "+full+" "+tableColumns)
	br, err := startBroker(tb, brokerName)
	if err != nil {
		return fail(err)
	}
	setup, err := newProducerSetup(tb, bin, db, br, []string{full}, profileDir != "")
	if err != nil {
		return fail(err)
	}
	p, err := setup.start(tb)
	if err != nil {
		return fail(err)
	}
	if err := p.waitLog(streamStartedLog, time.Minute); err != nil {
		return fail(err)
	}
	if profileDir != "" {
		go traceRun(setup, filepath.Join(profileDir, "latency-"+brokerName+".trace"), duration/2)
	}

	n := max(int(rate*duration.Seconds()), 1)
	subject := br.subject(full)
	delivered, ingress := newDeliveries(n), newDeliveries(n)
	stopSub, err := br.subscribe(ctx, subject, delivered.add)
	if err != nil {
		return fail(err)
	}
	defer stopSub()
	stopIngress, hasIngress, err := br.subscribeIngress(subject, ingress.add)
	if err != nil {
		return fail(err)
	}
	defer stopIngress()

	committed, writeTime, err := writeAtRate(ctx, db, full, n, rate)
	if err != nil {
		return fail(err)
	}
	lat, err := delivered.wait(ctx, committed)
	if err != nil {
		return fail(err)
	}
	res := latencyResult{Broker: brokerName, Commits: n, Rate: perSecond(n, writeTime),
		P50: percentile(lat, 50), P99: percentile(lat, 99), Max: lat[n-1], IngressP50: -1, IngressP99: -1}
	if hasIngress {
		in, err := ingress.wait(ctx, committed)
		if err != nil {
			return fail(fmt.Errorf("at the broker's ingress: %w", err))
		}
		res.IngressP50, res.IngressP99 = percentile(in, 50), percentile(in, 99)
	}
	stopSub()
	stopIngress()
	if err := p.stop(); err != nil {
		return fail(err)
	}
	return res, nil
}

// wait waits up to latencyDrain for every message and returns the sorted
// latencies: arrival minus committed, per id. It fails when a message is
// missing or one could not be decoded.
func (d *deliveries) wait(ctx context.Context, committed []time.Time) ([]time.Duration, error) {
	select {
	case <-d.all:
	case <-time.After(latencyDrain):
	case <-ctx.Done():
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	if d.received != len(d.at) {
		return nil, fmt.Errorf("received %d of %d messages within %s of the last commit", d.received, len(d.at), latencyDrain)
	}
	lat := make([]time.Duration, len(d.at))
	for i := range lat {
		lat[i] = d.at[i].Sub(committed[i])
	}
	slices.Sort(lat)
	return lat, nil
}

// writeAtRate writes n single-row autocommit INSERTs with ids 0..n-1 into
// table from one connection, paced at rate per second (catching up after a
// slow one), and returns when each COMMIT returned and how long it took.
func writeAtRate(ctx context.Context, db *testenv.MariaDB, table string, n int, rate float64) ([]time.Time, time.Duration, error) {
	pool, err := sql.Open("mysql", db.DSN(""))
	if err != nil {
		return nil, 0, fmt.Errorf("open mariadb %s: %w", db.Addr(), err)
	}
	defer pool.Close()
	conn, err := pool.Conn(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("connect to mariadb %s: %w", db.Addr(), err)
	}
	defer conn.Close()
	stmts := make([]string, n)
	for i := range stmts {
		stmts[i] = fmt.Sprintf("INSERT INTO %s VALUES (%d, 'item-%d', %d, %d.%02d, NOW(6))", table, i, i, i%100, i/100, i%100)
	}
	interval := time.Duration(float64(time.Second) / rate)
	committed := make([]time.Time, n)
	began := time.Now()
	next := began
	for i, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return nil, 0, fmt.Errorf("commit %d of %d: exec %q: %w", i+1, n, s, err)
		}
		committed[i] = time.Now()
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	return committed, time.Since(began), nil
}
