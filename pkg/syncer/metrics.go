package syncer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// metrics are the sync's Prometheus metrics, on a registry of their own.
type metrics struct {
	reg          *prometheus.Registry
	changes      *prometheus.CounterVec
	batches      *prometheus.CounterVec
	applySeconds *prometheus.HistogramVec
	lag          *prometheus.GaugeVec
	lastApplied  *prometheus.GaugeVec
	errors       *prometheus.CounterVec
	schemaChange *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dbsync_sync_changes_total",
			Help: "Row changes written to the target, by table and type (insert, update, delete, read)."}, []string{"table", "type"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dbsync_sync_batches_total",
			Help: "Batches written to the target (each one atomic with its progress), by table."}, []string{"table"}),
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dbsync_sync_apply_seconds",
			Help: "Time to write one batch to the target, by table.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"table"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dbsync_sync_lag_seconds",
			Help: "When the last batch was written: its time minus the source commit time of its last change (one-second resolution), by table."}, []string{"table"}),
		lastApplied: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dbsync_sync_last_commit_timestamp_seconds",
			Help: "Source commit time of the last change written, by table (Unix seconds)."}, []string{"table"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dbsync_sync_errors_total",
			Help: "Failed attempts, by table and kind: write (the target failed; retried), permanent (the target refuses a change for good; retried until fixed), schema_change (the target lacks a column; retried until fixed), poison (an undecodable message), other."}, []string{"table", "kind"}),
		schemaChange: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dbsync_sync_schema_change",
			Help: "1 while a table's changes wait for the target to be fixed after a source schema change."}, []string{"table"}),
	}
	m.reg.MustRegister(m.changes, m.batches, m.applySeconds, m.lag, m.lastApplied, m.errors, m.schemaChange,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// applied counts a batch written in took.
func (m *metrics) applied(table string, changes []*envelope.Envelope, took time.Duration) {
	for _, env := range changes {
		m.changes.WithLabelValues(table, env.Type).Inc()
	}
	m.batches.WithLabelValues(table).Inc()
	m.applySeconds.WithLabelValues(table).Observe(took.Seconds())
	if len(changes) > 0 {
		ts := changes[len(changes)-1].Source.TS
		m.lastApplied.WithLabelValues(table).Set(float64(ts.Unix()))
		m.lag.WithLabelValues(table).Set(max(time.Since(ts).Seconds(), 0))
	}
}
