package syncer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/redact"
	"github.com/dbsync/dbsync/pkg/sink"
)

// Syncer keeps one target equal to the configured source tables.
type Syncer struct {
	cfg     *Config
	log     logrus.FieldLogger
	target  sink.Sink
	client  *client.Client
	subs    map[string]*client.Subscription
	metrics *metrics
	secrets *redact.Secrets

	// source reads the tables' schema again after a schema change.
	source *sql.DB

	mu sync.Mutex
	// tables are the source tables' current descriptions, by "db.table".
	tables map[string]*sink.Table
	// schemaChanges holds, per table, the schema change its last batch
	// could not be written for, and permanent the error of a change the
	// target can never take (both cleared by the next batch written).
	schemaChanges map[string]*sink.SchemaChangeError
	permanent     map[string]error
}

// Open reads the source tables' schema, connects to the target (preparing
// each table there) and to the broker. It fails, naming the table, the
// server or the key, when any of them cannot be used.
func Open(ctx context.Context, cfg *Config, log logrus.FieldLogger) (*Syncer, error) {
	s := &Syncer{cfg: cfg, log: log, subs: map[string]*client.Subscription{}, metrics: newMetrics(),
		schemaChanges: map[string]*sink.SchemaChangeError{}, permanent: map[string]error{}, secrets: cfg.Secrets(), tables: map[string]*sink.Table{}}
	if err := s.openSource(); err != nil {
		return nil, err
	}
	tables, err := s.loadTables(ctx, s.cfg.Tables)
	if err != nil {
		_ = s.source.Close()
		return nil, err
	}
	if s.target, err = openTarget(ctx, cfg, log); err != nil {
		_ = s.source.Close()
		return nil, s.clean(err)
	}
	for _, t := range tables {
		if err := s.target.Prepare(ctx, t); err != nil {
			_ = s.Close()
			return nil, s.clean(fmt.Errorf("prepare %s in %s: %w", t, cfg.Target, err))
		}
		s.tables[t.String()] = t
	}
	if s.client, err = s.newClient(); err != nil {
		_ = s.Close()
		return nil, s.clean(err)
	}
	opts := client.BatchOptions{MaxChanges: cfg.Batch.MaxChanges}
	for _, t := range tables {
		sub, err := s.client.SubscribeEnvelopeBatch(t.DB, t.Name, opts, s.applier(t.String()))
		if err != nil {
			_ = s.Close()
			return nil, s.clean(fmt.Errorf("subscribe to %s: %w", t, err))
		}
		s.mu.Lock()
		s.subs[t.String()] = sub
		s.mu.Unlock()
	}
	log.WithFields(logrus.Fields{"target": cfg.Target, "tables": len(tables), "client_id": cfg.Broker.ClientID}).Info("sync started")
	return s, nil
}

// clean hides every secret of the configuration in err.
func (s *Syncer) clean(err error) error {
	if err == nil {
		return nil
	}
	return s.secrets.Error(err)
}

// openSource opens the connection pool to the source server.
func (s *Syncer) openSource() error {
	src := s.cfg.Source
	mc := mysql.NewConfig()
	mc.Net, mc.Addr, mc.User, mc.Passwd = "tcp", net.JoinHostPort(src.Host, strconv.Itoa(src.Port)), src.User, src.Password
	mc.Timeout = 10 * time.Second
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return fmt.Errorf("Source: %w", err)
	}
	s.source = sql.OpenDB(connector)
	s.source.SetMaxIdleConns(1)
	return nil
}

// loadTables reads the tables' ("db.table") columns and keys from the
// source.
func (s *Syncer) loadTables(ctx context.Context, tables []string) ([]*sink.Table, error) {
	names := make([][2]string, len(tables))
	for i, t := range tables {
		names[i][0], names[i][1], _ = strings.Cut(t, ".")
	}
	loaded, err := sink.LoadTables(ctx, s.source, names)
	if err != nil {
		src := s.cfg.Source
		return nil, s.clean(fmt.Errorf("read the tables' columns from the source %s as %s: %w",
			net.JoinHostPort(src.Host, strconv.Itoa(src.Port)), src.User, err))
	}
	return loaded, nil
}

// newClient connects the SDK to the broker, with the target's progress
// store as its dedup store.
func (s *Syncer) newClient() (*client.Client, error) {
	b := s.cfg.Broker
	cc := client.Config{
		Broker: b.Broker, Host: b.URL, Brokers: b.Brokers, ClusterID: b.ClusterID, ClientID: b.ClientID,
		Stream: b.Stream, Prefix: b.Prefix, User: b.User, Password: b.Password, Token: b.Token,
		NKeySeedFile: b.NKeySeedFile, CredsFile: b.CredsFile, SASLMechanism: b.SASLMechanism, TLS: b.TLS,
		OnPoison: b.OnPoison, DeadLetterSubject: b.DeadLetterSubject, AckWait: time.Duration(b.AckWait),
		Dedup: s.target.Dedup(), Logger: s.log, OnError: s.onError,
	}
	return client.NewClient(cc)
}

// applier writes one table's batches to the target. When the target
// cannot take a batch because the source table changed, the table's schema
// is read from the source again and the target prepared for it: that names
// exactly what to change (PostgreSQL: the ALTER TABLE to run), or finds the
// target already fixed and writes the batch.
func (s *Syncer) applier(name string) func(ctx context.Context, b client.Batch[*envelope.Envelope]) error {
	return func(ctx context.Context, b client.Batch[*envelope.Envelope]) error {
		start := time.Now()
		err := s.target.Apply(ctx, sink.Batch{Table: s.table(name), Changes: b.Changes, Key: b.Key, Progress: b.Progress})
		var sc *sink.SchemaChangeError
		if errors.As(err, &sc) {
			t, rerr := s.reloadTable(ctx, name)
			switch {
			case t != nil:
				start = time.Now()
				err = s.target.Apply(ctx, sink.Batch{Table: t, Changes: b.Changes, Key: b.Key, Progress: b.Progress})
			case errors.As(rerr, new(*sink.SchemaChangeError)):
				return rerr // names exactly what to change
			default:
				return errors.Join(err, rerr)
			}
		}
		if err != nil {
			return err
		}
		s.metrics.applied(name, b.Changes, time.Since(start))
		s.mu.Lock()
		if s.schemaChanges[name] != nil || s.permanent[name] != nil {
			delete(s.schemaChanges, name)
			delete(s.permanent, name)
			s.log.WithField("table", name).Info("the target takes the table's changes again")
		}
		s.mu.Unlock()
		s.metrics.schemaChange.WithLabelValues(name).Set(0)
		return nil
	}
}

// table is the current description of the table name.
func (s *Syncer) table(name string) *sink.Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[name]
}

// reloadTable reads name's schema from the source again and prepares the
// target for it. It returns the new description when the target takes it
// (then current), nil and Prepare's error (a *sink.SchemaChangeError saying
// what to change) when it does not.
func (s *Syncer) reloadTable(ctx context.Context, name string) (*sink.Table, error) {
	loaded, err := s.loadTables(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	t := loaded[0]
	if err := s.target.Prepare(ctx, t); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.tables[name] = t
	s.mu.Unlock()
	return t, nil
}

// onError sees every failed delivery, poison message and history change
// the SDK reports: a schema change is remembered (readiness reports it)
// and counted.
func (s *Syncer) onError(err error) {
	var de *client.DeliveryError
	table := ""
	if errors.As(err, &de) {
		table = s.tableOf(de.Subject)
	}
	var pe *client.PoisonError
	if errors.As(err, &pe) {
		table = s.tableOf(pe.Subject)
	}
	var sc *sink.SchemaChangeError
	switch {
	case errors.As(err, &sc):
		s.mu.Lock()
		first := s.schemaChanges[sc.Table] == nil
		s.schemaChanges[sc.Table] = sc
		s.mu.Unlock()
		s.metrics.schemaChange.WithLabelValues(sc.Table).Set(1)
		s.metrics.errors.WithLabelValues(sc.Table, "schema_change").Inc()
		if first {
			s.log.WithFields(logrus.Fields{"table": sc.Table, "change": sc.What, "fix": sc.Fix}).
				Error("the source table changed and the target cannot take its changes; the sync of this table waits (retrying) until the target is fixed")
		}
	case pe != nil:
		s.metrics.errors.WithLabelValues(table, "poison").Inc()
	case de != nil && failure.IsPermanent(err):
		// Retried (with backoff) like any failure, but it cannot heal by
		// itself: readiness says so until a batch is written again.
		s.mu.Lock()
		first := s.permanent[table] == nil
		s.permanent[table] = de.Err
		s.mu.Unlock()
		s.metrics.errors.WithLabelValues(table, "permanent").Inc()
		if first {
			s.log.WithError(de.Err).WithField("table", table).Error("the target refuses a change for good; the table's sync waits at it (retrying) until it is fixed")
		}
	case de != nil:
		s.metrics.errors.WithLabelValues(table, "write").Inc()
	default:
		s.metrics.errors.WithLabelValues(table, "other").Inc()
	}
}

// tableOf is the table ("db.table") consumed on subject
// (<prefix><db>.<table>): the longest configured name the subject ends
// with after a prefix.
func (s *Syncer) tableOf(subject string) string {
	best := ""
	for _, name := range s.cfg.Tables {
		if strings.HasSuffix(subject, name) && len(name) > len(best) {
			best = name
		}
	}
	if best == "" {
		return subject
	}
	return best
}

// Ready reports why the sync cannot keep its tables equal now: the target
// does not answer, a table's subscription stopped, or a table waits for a
// schema fix. Nil when all is well.
func (s *Syncer) Ready(ctx context.Context) error {
	var errs []error
	if err := s.target.Ping(ctx); err != nil {
		errs = append(errs, fmt.Errorf("%s target: %w", s.cfg.Target, err))
	}
	s.mu.Lock()
	subs := maps.Clone(s.subs)
	for _, sc := range s.schemaChanges {
		errs = append(errs, sc)
	}
	for name, err := range s.permanent {
		errs = append(errs, fmt.Errorf("%s: waits for a change the target cannot take: %w", name, err))
	}
	s.mu.Unlock()
	for name, sub := range subs {
		if err := sub.Err(); err != nil {
			errs = append(errs, fmt.Errorf("%s: stopped: %w", name, err))
		}
	}
	return s.clean(errors.Join(errs...))
}

// Close stops consuming (a batch being written finishes or comes again)
// and closes the target.
func (s *Syncer) Close() error {
	var errs []error
	if s.client != nil {
		errs = append(errs, s.client.Close())
	}
	if s.target != nil {
		errs = append(errs, s.target.Close())
	}
	errs = append(errs, s.source.Close())
	return errors.Join(errs...)
}
