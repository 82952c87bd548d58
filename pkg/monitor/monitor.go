// Package monitor is the producer's operations view: Prometheus metrics,
// liveness and readiness, replication lag and stall detection, served over
// HTTP on /metrics, /livez and /readyz.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/position"
)

// Source is what the monitor asks the source server: its current binlog
// position and the sizes of its binlog files.
type Source interface {
	// CurrentFilePosition is where the binlog ends now (file and offset;
	// the monitor needs no GTID state, which costs the server a read of
	// the binlog file).
	CurrentFilePosition(ctx context.Context) (position.Position, error)
	// BytesBetween returns how many binlog bytes lie from a to b.
	BytesBetween(ctx context.Context, a, b position.Position) (int64, error)
}

// Broker reports whether the broker connection works (reconnecting if it
// needs to).
type Broker interface {
	Ping(ctx context.Context) error
}

// connector is implemented by brokers that can tell without a round trip
// that their connection is down (mq.Connector); the monitor then reports
// it at once instead of after a ping that waits for a reconnect.
type connector interface {
	Connected() bool
}

// RowKey labels published rows.
type RowKey struct{ DB, Table, Type string }

// Monitor collects the producer's state. Its methods are safe for concurrent
// use; the zero value is not usable, use New.
type Monitor struct {
	reg          *prometheus.Registry
	stallTimeout time.Duration
	now          func() time.Time

	rows              *prometheus.CounterVec
	transactions      prometheus.Counter
	publishErrs       prometheus.Counter
	batchRows         prometheus.Histogram
	publishTime       prometheus.Histogram
	cpFile            prometheus.Gauge
	cpPos             prometheus.Gauge
	lagSeconds        prometheus.Gauge
	lagBytes          prometheus.Gauge
	sourceUp          prometheus.Gauge
	brokerUp          prometheus.Gauge
	stalled           prometheus.Gauge
	unpublished       *prometheus.CounterVec
	budgetUsed        prometheus.Gauge
	snapshotRows      *prometheus.CounterVec
	snapshotRemaining prometheus.Gauge
	snapshotRunning   prometheus.Gauge
	takeovers         prometheus.Counter
	failovers         prometheus.Counter

	mu       sync.Mutex
	sourceOK bool
	brokerOK bool
	// publishErr is the last publish failure, cleared by the next
	// acknowledged batch: a broker that answers pings but refuses messages
	// is not ready.
	publishErr     error
	checkpointOK   bool
	checkpoint     position.Position
	checkpointAt   time.Time
	progressAt     time.Time // last time the checkpoint advanced
	lastEventTime  time.Time // binlog time of the newest acknowledged event
	behindBytes    int64
	isStalled      bool
	checkpointErr  error
	lastSourceErr  error
	lastBrokerErr  error
	sourcePolledAt time.Time
	// ages bounds the age of the checkpoint's binlog file and holds the
	// source's binlog retention.
	ages binlogAges
}

// New returns a Monitor; stallTimeout is how long the source may be ahead
// with no progress before the producer counts as stalled.
func New(stallTimeout time.Duration) *Monitor {
	m := &Monitor{reg: prometheus.NewRegistry(), stallTimeout: stallTimeout, now: time.Now, checkpointOK: true}
	f := newFactory(m.reg)
	m.rows = f.counterVec("dbsync_rows_published_total", "Row changes acknowledged by the broker.", "db", "table", "type")
	m.transactions = f.counter("dbsync_transactions_published_total", "Transactions whose every row change was acknowledged by the broker.")
	m.publishErrs = f.counter("dbsync_publish_errors_total", "Batches the broker did not acknowledge completely (each is replayed from the checkpoint).")
	m.batchRows = f.histogram("dbsync_batch_rows", "Row changes per published batch.", prometheus.ExponentialBuckets(1, 4, 8))
	m.publishTime = f.histogram("dbsync_publish_duration_seconds", "Time from handing a batch to the broker until every message was acknowledged.", prometheus.ExponentialBuckets(0.0005, 4, 9))
	m.cpFile = f.gauge("dbsync_checkpoint_binlog_file_number", "Numeric suffix of the checkpoint's binlog file.")
	m.cpPos = f.gauge("dbsync_checkpoint_binlog_position", "Byte offset of the checkpoint in its binlog file.")
	f.gaugeFunc("dbsync_checkpoint_age_seconds", "Seconds since the checkpoint was last saved.", func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.checkpointAt.IsZero() {
			return 0
		}
		return m.now().Sub(m.checkpointAt).Seconds()
	})
	m.lagSeconds = f.gauge("dbsync_replication_lag_seconds", "Seconds between now and the commit time of the newest acknowledged change, while the source is ahead (0 when caught up).")
	m.lagBytes = f.gauge("dbsync_replication_lag_bytes", "Binlog bytes between the checkpoint and the source's current position.")
	m.sourceUp = f.gauge("dbsync_source_connected", "1 while the binlog stream is connected.")
	m.brokerUp = f.gauge("dbsync_broker_connected", "1 while the broker connection works.")
	m.stalled = f.gauge("dbsync_stalled", "1 when the source has moved on but nothing was published for the stall timeout.")
	m.unpublished = f.counterVec("dbsync_unpublishable_total", "Row changes that could not be published and went to the dead-letter subject as markers (Tables.OnUnpublishable skip), by reason: too_large or table (a name that cannot be a subject, a character set dbsync cannot convert).", "db", "table", "reason")
	m.budgetUsed = f.gauge("dbsync_memory_budget_used_bytes", "Bytes of encoded row changes held between the binlog reader and the broker's acknowledgement (bounded by Memory.Budget).")
	m.snapshotRows = f.counterVec("dbsync_snapshot_rows_total", "Rows a snapshot published (type read), by table.", "db", "table")
	m.snapshotRemaining = f.gauge("dbsync_snapshot_remaining_rows", "Estimated rows the running snapshot has still to read (information_schema's estimate; 0 when none runs).")
	m.snapshotRunning = f.gauge("dbsync_snapshot_running", "1 while a snapshot runs.")
	f.gaugeFunc("dbsync_ha_active", "1 while this replica streams (holds the checkpoint lease), 0 while it stands by.", func() float64 { return 1 })
	m.failovers = f.counter("dbsync_source_failovers_total", "Times the producer moved its checkpoint to another source server by GTID (a promoted replica, another host of Mysql.Hosts).")
	m.takeovers = f.counter("dbsync_ha_takeovers_total", "Times this process took the checkpoint lease over from another replica after standing by (HA.Standby).")
	f.optionalGaugeFunc("dbsync_binlog_retention_seconds", "The source's binlog expiry: a binlog file is purged once it was last written longer ago (binlog_expire_logs_seconds, else expire_logs_days; 0: binlogs never expire). Absent until read.", m.binlogRetention)
	f.optionalGaugeFunc("dbsync_checkpoint_binlog_file_age_seconds", "Seconds since the source last wrote the checkpoint's binlog file, at most: the age binlog expiry compares with dbsync_binlog_retention_seconds (about the monitor interval while the checkpoint is in the file being written). Absent while unknown: the file was rotated before this process watched and nothing was published since.", m.checkpointBinlogAge)
	return m
}

// FailedOver counts a move of the checkpoint to another source server by
// GTID (a promoted replica).
func (m *Monitor) FailedOver() { m.failovers.Inc() }

// TookOver counts a takeover from another replica.
func (m *Monitor) TookOver() { m.takeovers.Inc() }

// SnapshotPublished counts n rows of db.table a snapshot published.
func (m *Monitor) SnapshotPublished(db, table string, n int) {
	m.snapshotRows.WithLabelValues(db, table).Add(float64(n))
}

// SnapshotProgress says whether a snapshot runs and about how many rows it
// has still to read.
func (m *Monitor) SnapshotProgress(running bool, remaining int64) {
	if !running {
		m.snapshotRunning.Set(0)
		m.snapshotRemaining.Set(0)
		return
	}
	m.snapshotRunning.Set(1)
	m.snapshotRemaining.Set(float64(max(remaining, 0)))
}

// Unpublishable counts a change replaced by a dead-letter marker.
func (m *Monitor) Unpublishable(db, table, reason string) {
	m.unpublished.WithLabelValues(db, table, reason).Inc()
}

// BudgetUsed records the bytes the pipeline holds.
func (m *Monitor) BudgetUsed(n int) { m.budgetUsed.Set(float64(n)) }

// Checkpoint is the last saved checkpoint.
func (m *Monitor) Checkpoint() position.Position {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkpoint
}

// Registry is the Prometheus registry holding the metrics.
func (m *Monitor) Registry() *prometheus.Registry { return m.reg }

// SourceConnected records whether the binlog stream is connected.
func (m *Monitor) SourceConnected(ok bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sourceOK = ok
	m.lastSourceErr = err
	m.sourceUp.Set(b2f(ok))
}

// Published records an acknowledged batch: rows per label, whole
// transactions, the binlog time of its newest event and how long the
// publish took. A batch holding only transaction boundaries (their rows
// went in earlier batches) counts its transactions and nothing else.
func (m *Monitor) Published(rows map[RowKey]int, transactions int, eventTime time.Time, took time.Duration) {
	total := 0
	for k, n := range rows {
		m.rows.WithLabelValues(k.DB, k.Table, k.Type).Add(float64(n))
		total += n
	}
	m.transactions.Add(float64(transactions))
	if total > 0 {
		m.batchRows.Observe(float64(total))
		m.publishTime.Observe(took.Seconds())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if total > 0 {
		m.brokerOK = true
		m.publishErr = nil
		m.brokerUp.Set(1)
	}
	if eventTime.After(m.lastEventTime) {
		m.lastEventTime = eventTime
	}
}

// PublishFailed records a batch the broker did not acknowledge; the
// producer is not ready until a later batch is acknowledged.
func (m *Monitor) PublishFailed(err error) {
	m.publishErrs.Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publishErr = err
}

// Checkpointed records a checkpoint save: its position, or the error.
func (m *Monitor) Checkpointed(pos position.Position, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.checkpointOK = false
		m.checkpointErr = err
		return
	}
	now := m.now()
	m.checkpointOK, m.checkpointErr = true, nil
	if pos != m.checkpoint {
		m.progressAt = now
	}
	m.checkpoint, m.checkpointAt = pos, now
	m.cpFile.Set(float64(fileNumber(pos.File)))
	m.cpPos.Set(float64(pos.Pos))
}

// fileNumber is the numeric suffix of a binlog file name ("mysql-bin.000042" → 42).
func fileNumber(file string) int64 {
	i := strings.LastIndexByte(file, '.')
	n, _ := strconv.ParseInt(file[i+1:], 10, 64)
	return n
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Poll measures lag and stall against src and pings broker every interval
// until ctx is done; a nil src or broker is not measured.
func (m *Monitor) Poll(ctx context.Context, src Source, broker Broker, interval time.Duration, log logrus.FieldLogger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.pollOnce(ctx, src, broker, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Monitor) pollOnce(ctx context.Context, src Source, broker Broker, log logrus.FieldLogger) {
	if broker != nil {
		if c, ok := broker.(connector); ok && !c.Connected() {
			// Known down: say so now, the ping below may wait for a
			// reconnect.
			m.brokerState(errors.New("the connection to the broker is lost; reconnecting"))
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := broker.Ping(pctx)
		cancel()
		m.brokerState(err)
	}
	if src == nil {
		return
	}
	cp := m.Checkpoint()
	// The server was still writing current.File when it answered, after
	// asked: that file's last write is no earlier than asked.
	asked := m.now()
	current, err := src.CurrentFilePosition(ctx)
	if err != nil {
		log.WithError(err).WithField("checkpoint", cp.String()).Debug("monitor: cannot read the source's position")
		return
	}
	if err := m.pollRetention(ctx, src); err != nil {
		log.WithError(err).Debug("monitor: cannot read the source's binlog retention")
	}
	m.mu.Lock()
	m.ages.sawWriting(current.File, m.checkpoint.File, asked)
	m.mu.Unlock()
	var behind int64
	if !cp.IsZero() {
		if behind, err = src.BytesBetween(ctx, cp, current); err != nil {
			log.WithError(err).WithField("checkpoint", cp.String()).Debug("monitor: cannot measure the lag")
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.behindBytes = behind
	m.sourcePolledAt = now
	m.lagBytes.Set(float64(behind))
	if behind > 0 && !m.lastEventTime.IsZero() {
		m.lagSeconds.Set(now.Sub(m.lastEventTime).Seconds())
	} else {
		m.lagSeconds.Set(0)
	}
	if behind <= 0 {
		// Caught up: nothing to publish, and every change up to the
		// source's position was acknowledged.
		m.progressAt = now
		m.publishErr = nil
	}
	stalled := behind > 0 && !m.progressAt.IsZero() && now.Sub(m.progressAt) > m.stallTimeout
	if stalled && !m.isStalled {
		log.WithFields(logrus.Fields{"checkpoint": cp.String(), "source_position": current.String(), "behind_bytes": behind}).
			Error("STALLED: the source has moved on but nothing was published for " + m.stallTimeout.String())
	}
	m.isStalled = stalled
	m.stalled.Set(b2f(stalled))
}

// brokerState records the outcome of a broker check.
func (m *Monitor) brokerState(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.brokerOK, m.lastBrokerErr = err == nil, err
	m.brokerUp.Set(b2f(err == nil))
}

// Ready returns nil when the producer is healthy: the binlog stream and the
// broker are connected, the last publish and the last checkpoint save
// worked, and it is not stalled; otherwise an error listing what is wrong.
func (m *Monitor) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var problems []error
	if !m.sourceOK {
		problems = append(problems, fmt.Errorf("binlog stream not connected: %v", m.lastSourceErr))
	}
	if !m.brokerOK {
		problems = append(problems, fmt.Errorf("broker not connected: %v", m.lastBrokerErr))
	}
	if m.publishErr != nil {
		problems = append(problems, fmt.Errorf("last publish failed (streaming resumes from the checkpoint): %v", m.publishErr))
	}
	if !m.checkpointOK {
		problems = append(problems, fmt.Errorf("checkpoint not durable: %v", m.checkpointErr))
	}
	if m.isStalled {
		problems = append(problems, fmt.Errorf("stalled: %d binlog bytes behind and no progress since %s", m.behindBytes, m.progressAt.Format(time.RFC3339)))
	}
	return errors.Join(problems...)
}

// ServeOptions say what the operations listener serves.
type ServeOptions struct {
	// Pprof also serves Go's profiles under /debug/pprof/ (a profile or
	// trace runs at most maxProfileSeconds).
	Pprof bool
	// Redact, when set, cleans the /readyz body (the errors it lists may
	// quote a server's reply).
	Redact func(string) string
	// Extra are further handlers by path pattern (the producer's snapshot
	// commands).
	Extra map[string]http.Handler
}

// maxProfileSeconds caps /debug/pprof/profile and /debug/pprof/trace.
const maxProfileSeconds = 30

// Handler serves /metrics, /livez, /readyz and, with opts.Pprof, Go's
// /debug/pprof/ profiles.
func (m *Monitor) Handler(opts ServeOptions) http.Handler {
	mux := http.NewServeMux()
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", capSeconds(pprof.Profile))
		mux.HandleFunc("/debug/pprof/trace", capSeconds(pprof.Trace))
	}
	for path, h := range opts.Extra {
		mux.Handle(path, h)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := m.Ready(); err != nil {
			body := err.Error()
			if opts.Redact != nil {
				body = opts.Redact(body)
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, body)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// capSeconds limits a profile's "seconds" parameter to maxProfileSeconds.
func capSeconds(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n, err := strconv.Atoi(r.FormValue("seconds")); err == nil && n > maxProfileSeconds {
			q := r.URL.Query()
			q.Set("seconds", strconv.Itoa(maxProfileSeconds))
			r.URL.RawQuery = q.Encode()
			r.Form = nil
		}
		h(w, r)
	}
}

// Serve listens on addr and serves Handler(opts) until ctx is done, with
// timeouts so a slow client cannot hold connections. It returns the listen
// error at once (e.g. the address is taken), naming the address, and logs
// what it serves.
func (m *Monitor) Serve(ctx context.Context, addr string, opts ServeOptions, log logrus.FieldLogger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("HTTP.Listen %s: %w (pick a free address or set HTTP.Disabled)", addr, err)
	}
	write := 10 * time.Second
	if opts.Pprof {
		write = (maxProfileSeconds + 10) * time.Second
	}
	srv := &http.Server{
		Handler:           m.Handler(opts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      write,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	paths := "/metrics, /livez, /readyz"
	if opts.Pprof {
		paths += ", /debug/pprof/ (HTTP.Pprof)"
	}
	log.WithFields(logrus.Fields{"addr": l.Addr().String(), "paths": paths}).Info("operations listener serving " + paths)
	go func() { _ = srv.Serve(l) }()
	return nil
}
