// Package producer is the dbsync daemon's core: it reads the source's binlog
// (pkg/binlog), groups row changes into batches, publishes them (pkg/mq) and
// checkpoints the position after each fully acknowledged transaction
// (pkg/storage). Any failure after start-up makes it resume from the last
// checkpoint; failures retrying cannot fix stop it with an error that says
// what to do.
package producer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/monitor"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// Components are the parts a producer runs on; pkg/wiring opens them from a
// config, tests build fakes. The producer closes only the queue it opened.
type Components struct {
	// Store holds the checkpoint. Whoever opened it holds it (bolt's file
	// lock, a redis lease), so no other process writes it meanwhile.
	Store storage.PositionStorager
	// Lease, when set, is the store's lease (a redis lease): once it is
	// lost the producer publishes nothing more and Run returns its error
	// at once; while it is unconfirmed (the store does not answer) nothing
	// is published. Nil for a store held exclusively (bolt).
	Lease storage.Lease
	// OpenQueue connects the broker. New calls it only once the checkpoint
	// and the source passed their checks, so a refused start creates no
	// stream and starts no embedded server.
	OpenQueue func(ctx context.Context) (mq.MessageQueue, error)
	// Source is the server whose changes are streamed.
	Source Source
	// Preflight, when set, checks the source before the first pass
	// (checkpoint is nil on a first start); its error stops New.
	Preflight func(ctx context.Context, checkpoint *position.Position) error
}

// Options tune the producer: what it publishes where, how it batches, and
// how it retries and reports.
type Options struct {
	// SourceName is the envelopes' source.name; a stream holding changes of
	// another source name is refused.
	SourceName string
	// Subject is the subject of a table's changes.
	Subject func(db, table string) string
	// DeadLetterSubject receives a marker for each skipped change.
	DeadLetterSubject string
	// SkipUnpublishable reports whether a table's changes that cannot be
	// published are replaced by markers (true) or stop the producer
	// (false, and when nil).
	SkipUnpublishable func(db, table string) bool
	// StartAtOldest makes a first start begin at the oldest binlog the
	// server has instead of its current position.
	StartAtOldest bool
	// Batch decides when a batch is published.
	Batch BatchOptions
	// MemoryBudget bounds the bytes of row changes held between the reader
	// and the broker's acknowledgement; 0 means unbounded.
	MemoryBudget int
	// HTTPListen is the address of /metrics, /livez and /readyz; empty
	// serves none. HTTP says what else it serves (profiles) and how the
	// /readyz body is cleaned of secrets.
	HTTPListen string
	HTTP       monitor.ServeOptions
	// StallTimeout is how long the pipeline may make no progress while the
	// source has changes before /livez fails; 0 never.
	StallTimeout time.Duration
	// DrainTimeout bounds a graceful stop: finishing the open transaction,
	// waiting for acknowledgements and saving the checkpoint. Default 30s.
	DrainTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to resume
	// after a failure. Defaults 500ms and 30s.
	RetryMin, RetryMax time.Duration
	// MonitorInterval is how often lag, stall and the broker connection are
	// measured; default 2s.
	MonitorInterval time.Duration
	// Snapshot tunes snapshots of tables' existing rows.
	Snapshot SnapshotOptions
	// TookOver says this producer stood by (HA.Standby) and took the
	// checkpoint lease over from another replica (counted in
	// dbsync_ha_takeovers_total).
	TookOver bool
}

func (o *Options) defaults() {
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 500 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.MonitorInterval <= 0 {
		o.MonitorInterval = 2 * time.Second
	}
	if o.Subject == nil {
		o.Subject = func(db, table string) string { return db + "." + table }
	}
	if o.SkipUnpublishable == nil {
		o.SkipUnpublishable = func(string, string) bool { return false }
	}
}

// Producer streams one source server to one message queue.
type Producer struct {
	opts  Options
	log   logrus.FieldLogger
	store storage.PositionStorager
	lease storage.Lease
	src   Source
	queue mq.MessageQueue
	mon   *monitor.Monitor
	// snap connects the snapshot commands with the running pass.
	snap *snapshotControl
}

// New checks that streaming can start on c and prepares it: the checkpoint
// store is readable (an unreadable or corrupt checkpoint is an error naming
// it; dbsync never falls back to the current position), the source passes
// c.Preflight, the checkpoint's binlog still exists, and a first start is
// not a lost checkpoint in disguise (the broker holds no changes of this
// source yet). With no checkpoint, it saves the server's current (or, with
// StartAtOldest, oldest) position as the first checkpoint and says so
// loudly.
func New(ctx context.Context, c Components, opts Options, log logrus.FieldLogger) (_ *Producer, err error) {
	opts.defaults()
	p := &Producer{opts: opts, log: log, store: c.Store, lease: c.Lease, src: c.Source, mon: monitor.New(opts.StallTimeout), snap: newSnapshotControl()}
	if opts.TookOver {
		p.mon.TookOver()
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	addPositionHook(log, p.mon)
	checkpoint, err := p.store.Get(ctx)
	fresh := errors.Is(err, storage.ErrNoCheckpoint)
	if err != nil && !fresh {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	if checkpoint.History == "" && !fresh {
		// A checkpoint from before histories were recorded: name its
		// history now, so envelopes carry one from here on.
		checkpoint.History = position.NewHistory()
		if err = p.store.Save(ctx, checkpoint); err != nil {
			return nil, fmt.Errorf("record the binlog history id with checkpoint %s: %w", checkpoint, err)
		}
	}
	if c.Preflight != nil {
		var cp *position.Position
		if !fresh {
			cp = &checkpoint
		}
		if err = c.Preflight(ctx, cp); err != nil {
			return nil, err
		}
	}
	if !fresh {
		// A checkpoint of another server is found there by GTID at the
		// first pass; here it must only be resumable.
		if _, err = p.src.ResumeAt(ctx, checkpoint); err != nil {
			return nil, err
		}
	}
	if p.queue, err = c.OpenQueue(ctx); err != nil {
		return nil, err
	}
	if fresh {
		if err = p.refuseIfPublishedBefore(ctx); err != nil {
			return nil, err
		}
		if checkpoint, err = p.firstCheckpoint(ctx); err != nil {
			return nil, err
		}
	} else {
		log.WithField("checkpoint", checkpoint.String()).Info("resuming from checkpoint")
	}
	p.mon.Checkpointed(checkpoint, nil)
	return p, nil
}

// positionHook adds the current checkpoint to every log line that names no
// binlog position of its own, so each line says where the pipeline stands.
type positionHook struct{ mon *monitor.Monitor }

func (positionHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h positionHook) Fire(e *logrus.Entry) error {
	if _, ok := e.Data["position"]; ok {
		return nil
	}
	if _, ok := e.Data["checkpoint"]; ok {
		return nil
	}
	if cp := h.mon.Checkpoint(); !cp.IsZero() {
		e.Data["checkpoint"] = cp.String()
	}
	return nil
}

// addPositionHook installs positionHook on the logger behind log.
func addPositionHook(log logrus.FieldLogger, mon *monitor.Monitor) {
	switch l := log.(type) {
	case *logrus.Logger:
		l.AddHook(positionHook{mon})
	case *logrus.Entry:
		l.Logger.AddHook(positionHook{mon})
	}
}

// refuseIfPublishedBefore tells a first start from a lost checkpoint: when
// the broker can say (JetStream) and already holds changes from this
// source, the checkpoint store lost its checkpoint, and starting at the
// current position would skip everything in between.
func (p *Producer) refuseIfPublishedBefore(ctx context.Context) error {
	h, ok := p.queue.(mq.HistoryReader)
	if !ok {
		return nil
	}
	last, found, err := h.LastMessage(ctx)
	if err != nil {
		return fmt.Errorf("check the broker for earlier changes before a first start: %w", err)
	}
	if !found {
		return nil
	}
	src, err := p.ownMessage(last)
	if err != nil {
		return err
	}
	return failure.WithFix(failure.Permanent(fmt.Errorf("the checkpoint store has no checkpoint, but the broker already holds changes from this source, "+
		"the last one %s (binlog %s:%d, GTID %q): the checkpoint was lost, and dbsync will not start at the current position, which would skip "+
		"everything in between", last.ID, src.File, src.Pos, src.GTID)),
		"set the checkpoint to the last transaction you are sure was published: producer checkpoint set -gtid GTID (or FILE POS); "+
			"what is published again is dropped as a replay")
}

// ownMessage returns the source coordinate of a message the broker holds,
// which must be one this producer wrote: a stream that holds anything else
// is a configuration error (the broker's order check would refuse every
// message after a foreign one, and a foreign coordinate cannot tell what
// was published).
func (p *Producer) ownMessage(m mq.StoredMessage) (envelope.Source, error) {
	src, err := envelope.SourceOf(m.Data)
	if err != nil {
		return src, failure.WithFix(failure.Permanent(fmt.Errorf("the broker's stream (JetStream.Stream) holds a message dbsync did not write "+
			"(subject %s, sequence %d: %v); the stream must hold this producer's changes only", m.Subject, m.Sequence, err)),
			"give the producer a stream of its own (JetStream.Stream), or remove what else publishes to its subjects")
	}
	if src.Name != p.opts.SourceName {
		return src, failure.WithFix(failure.Permanent(fmt.Errorf("the broker's stream (JetStream.Stream) holds changes of another source (source.name %q, "+
			"this producer is %q; subject %s, sequence %d); the stream must hold this producer's changes only",
			src.Name, p.opts.SourceName, m.Subject, m.Sequence)),
			"give each producer a stream of its own (JetStream.Stream) and its own ProName")
	}
	return src, nil
}

// held reads the broker's newest message before a pass from start. It
// returns that change when this pass would publish it again (the broker
// stores the changes of one binlog history in order and never a later one
// without an earlier one, so every change up to it is stored: the pass
// drops them instead of relying on the broker's duplicate window), and the
// binlog history id the pass publishes under: start's, or the broker's
// when they are the same history under two ids (a checkpoint lost and set
// again by hand takes a new one). A stream holding foreign messages is a
// permanent error.
func (p *Producer) held(ctx context.Context, start position.Position) (*envelope.Source, string, error) {
	h, ok := p.queue.(mq.HistoryReader)
	if !ok {
		return nil, start.History, nil
	}
	last, found, err := h.LastMessage(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("read the newest message the broker holds: %w", err)
	}
	if !found {
		return nil, start.History, nil
	}
	src, err := p.ownMessage(last)
	if err != nil {
		return nil, "", err
	}
	if !p.sameHistory(ctx, src, start) {
		return nil, start.History, nil // written before the checkpoint moved to this history
	}
	history := start.History
	if src.History != "" {
		history = src.History
	}
	at := position.Position{File: src.File, Pos: src.Pos}
	if at.Compare(start) < 0 {
		return nil, history, nil // before the checkpoint: nothing of this pass is held
	}
	current, err := p.src.CurrentPosition(ctx)
	if err != nil {
		return nil, "", err
	}
	if at.Compare(current) >= 0 {
		// Skipping up to it would skip changes the server has not even
		// written yet.
		return nil, "", failure.WithFix(failure.Permanent(fmt.Errorf("the broker's newest message (subject %s, sequence %d) claims binlog position %s:%d of this "+
			"source's history, beyond the server's current position %s: it was not published by this producer from this server",
			last.Subject, last.Sequence, src.File, src.Pos, current)),
			"find out who publishes to the stream (JetStream.Stream) and remove that message, or give the producer a stream of its own")
	}
	return &src, history, nil
}

// sameHistory reports whether a published change and a checkpoint belong to
// one binlog history: their history ids match; when both were written
// before ids existed, their binlog base names do; otherwise (the checkpoint
// was lost and set again by hand, which takes a new id) when the server's
// binlog still holds the change's position with its GTID.
func (p *Producer) sameHistory(ctx context.Context, src envelope.Source, cp position.Position) bool {
	switch {
	case src.History != "" && src.History == cp.History:
		return true
	case src.History == "" && cp.History == "":
		return binlogBase(src.File) == binlogBase(cp.File)
	}
	return p.src.HoldsPosition(ctx, position.Position{File: src.File, Pos: src.Pos, GTID: src.GTID})
}

// binlogBase is a binlog file name without its numeric suffix.
func binlogBase(file string) string {
	if i := strings.LastIndexByte(file, '.'); i >= 0 {
		return file[:i]
	}
	return file
}

func (p *Producer) firstCheckpoint(ctx context.Context) (position.Position, error) {
	var pos position.Position
	var err error
	where := "the server's CURRENT position: changes made before now are not published"
	if p.opts.StartAtOldest {
		pos, err = p.src.OldestPosition(ctx)
		where = "the OLDEST binlog the server still has (Mysql.StartAt=oldest)"
	} else {
		pos, err = p.src.CurrentPosition(ctx)
	}
	if err != nil {
		return pos, err
	}
	pos.History = position.NewHistory()
	if p.opts.Snapshot.Initial {
		snap, err := p.initialSnapshot(ctx)
		if err != nil {
			return pos, err
		}
		pos.Snapshot = snap
		where += ", after a snapshot of the included tables' existing rows (Snapshot.Mode)"
	}
	if err := p.store.Save(ctx, pos); err != nil {
		return pos, fmt.Errorf("save first checkpoint %s: %w", pos, err)
	}
	p.log.WithField("checkpoint", pos.String()).Warn("NO CHECKPOINT FOUND: first start, streaming from " + where)
	return pos, nil
}

// initialSnapshot is the snapshot of every included table a first start
// takes (Snapshot.Mode initial or when_needed); a table it would refuse
// stops the start.
func (p *Producer) initialSnapshot(ctx context.Context) (*position.Snapshot, error) {
	ss, ok := p.src.(SnapshotSource)
	if !ok {
		return nil, errors.New("Snapshot.Mode asks for a snapshot, but this source cannot take one")
	}
	tables, err := ss.SnapshotTables(ctx)
	if err != nil {
		return nil, err
	}
	keyless, err := p.checkPlans(ctx, tables)
	if err != nil {
		return nil, err
	}
	for _, t := range keyless {
		p.log.WithField("table", t).Warn("table has no primary key and no unique key over NOT NULL columns: the snapshot reads it in one go")
	}
	return newSnapshot(tables), nil
}

// Run streams until ctx is done, then stops gracefully: it finishes the
// transaction it is reading, waits for the broker's acknowledgements and
// saves the checkpoint, within Options.DrainTimeout; that returns nil. After
// a failure it resumes from the last checkpoint with backoff; it returns an
// error only for failures retrying cannot fix (purged binlog, wrong
// credentials, corrupt checkpoint, undecodable table, a lost lease) or when
// the graceful stop could not complete. When the store's lease is lost
// (Components.Lease) it stops at once, without draining: nothing more is
// published or saved, and it returns an error wrapping
// storage.ErrLeaseLost.
func (p *Producer) Run(ctx context.Context) error {
	hard, cancelHard := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelHard(nil)
	lost := p.leaseLost()
	go func() {
		select {
		case <-lost:
			cancelHard(p.lease.Err())
		case <-ctx.Done():
			t := time.NewTimer(p.opts.DrainTimeout)
			defer t.Stop()
			select {
			case <-t.C:
				cancelHard(nil)
			case <-lost:
				cancelHard(p.lease.Err())
			case <-hard.Done():
			}
		case <-hard.Done():
		}
	}()

	if err := p.startMonitoring(hard); err != nil {
		return err
	}
	backoff := p.opts.RetryMin
	for {
		started := time.Now()
		err := p.runOnce(hard, ctx.Done())
		if lostErr := p.lostError(lost); lostErr != nil {
			return p.stopLost(lostErr)
		}
		if errors.Is(err, storage.ErrLeaseLost) {
			return p.stopLost(err) // a refused save or send found it first
		}
		if isFatal(err) {
			return err
		}
		if ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("graceful stop incomplete (unacknowledged messages are published again at the next start): %w", err)
			}
			p.log.WithField("checkpoint", p.mon.Checkpoint().String()).Info("stopped: every published message acknowledged and the checkpoint saved")
			return nil
		}
		if err == nil {
			err = errors.New("binlog stream ended unexpectedly")
		}
		if time.Since(started) > time.Minute {
			backoff = p.opts.RetryMin
		}
		fields := logrus.Fields{"retry_in": backoff.String(), "checkpoint": p.mon.Checkpoint().String()}
		if fix := failure.Fix(err); fix != "" {
			fields["fix"] = fix
		}
		p.log.WithError(err).WithFields(fields).Warn("streaming failed; resuming from the last checkpoint")
		select {
		case <-time.After(backoff):
		case <-lost:
			return p.stopLost(p.lease.Err())
		case <-ctx.Done():
			p.log.WithField("checkpoint", p.mon.Checkpoint().String()).
				Warn("stopped while waiting to resume: messages published after the last checkpoint are published again at the next start")
			return nil
		}
		backoff = min(backoff*2, p.opts.RetryMax)
	}
}

// leaseLost is the lease's Lost channel; nil (never ready) without a
// lease.
func (p *Producer) leaseLost() <-chan struct{} {
	if p.lease == nil {
		return nil
	}
	return p.lease.Lost()
}

// lostError returns the lease's error once lost is closed, else nil.
func (p *Producer) lostError(lost <-chan struct{}) error {
	select {
	case <-lost:
		return p.lease.Err()
	default:
		return nil
	}
}

// stopLost logs why the producer stops on a lost lease and returns err
// (wrapping storage.ErrLeaseLost) to stop Run.
func (p *Producer) stopLost(err error) error {
	entry := p.log.WithError(err).WithField("checkpoint", p.mon.Checkpoint().String())
	if fix := failure.Fix(err); fix != "" {
		entry = entry.WithField("fix", fix)
	}
	msg := "checkpoint lease lost: another process wrote the checkpoint; stopping (nothing more is published or saved)"
	var lost *storage.LeaseLostError
	if errors.As(err, &lost) && lost.Holder != "" {
		entry = entry.WithField("holder", lost.Holder)
		msg = "lease lost to " + lost.Holder + ": another producer took the checkpoint; stopping (nothing more is published or saved)"
	}
	entry.Error(msg)
	return fmt.Errorf("stopped streaming: %w", err)
}

// startMonitoring serves /metrics, /livez and /readyz (unless no
// HTTPListen is set) and measures lag, stall and the broker connection on a
// source connection of its own, until ctx is done.
func (p *Producer) startMonitoring(ctx context.Context) error {
	if p.opts.HTTPListen != "" {
		opts := p.opts.HTTP
		opts.Extra = map[string]http.Handler{SnapshotPath: p.SnapshotHandler()}
		if err := p.mon.Serve(ctx, p.opts.HTTPListen, opts, p.log); err != nil {
			return err
		}
	}
	src, release, err := p.src.OpenMonitor(ctx)
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	var broker monitor.Broker
	if pinger, ok := p.queue.(mq.Pinger); ok {
		broker = pinger
	}
	go func() {
		defer release()
		p.mon.Poll(ctx, src, broker, p.opts.MonitorInterval, p.log)
	}()
	return nil
}

// isFatal reports errors that retrying cannot fix. A message too large for
// the broker is not one of them: the next pass finds it before sending and
// applies its table's policy (Tables.OnUnpublishable), with the broker's
// limits read anew.
func isFatal(err error) bool { return failure.IsPermanent(err) }

// runOnce is one pass from the stored checkpoint.
func (p *Producer) runOnce(ctx context.Context, stop <-chan struct{}) error {
	start, err := p.store.Get(ctx)
	if errors.Is(err, storage.ErrNoCheckpoint) {
		// The store lost the checkpoint while this producer ran (a redis
		// restarted without persistence, a deleted key): the last one this
		// producer saved is still right.
		start = p.mon.Checkpoint()
		p.log.WithField("checkpoint", start.String()).Error("the checkpoint vanished from the store while the producer ran; writing back the last one it saved")
		if err = p.store.Save(ctx, start); err != nil {
			return fmt.Errorf("restore the vanished checkpoint %s: %w", start, err)
		}
	}
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	res, err := p.src.ResumeAt(ctx, start)
	if err != nil {
		return err
	}
	if res.Moved {
		if start, err = p.failover(ctx, start, res.Position); err != nil {
			return err
		}
	} else {
		start = res.Position
	}
	skip, skipRows, err := p.publishedBeforeFailover(ctx, start)
	if err != nil {
		return err
	}
	held, history, err := p.held(ctx, start)
	if err != nil {
		return err
	}
	if history != start.History {
		// The checkpoint took a new id although it is of the broker's
		// history: keep the broker's, so consumers see one history.
		p.log.WithFields(logrus.Fields{"history": history, "checkpoint_history": start.History}).
			Warn("the checkpoint is of the binlog history the broker's changes are of; taking that history's id")
		start.History = history
		if err := p.store.Save(ctx, start); err != nil {
			return fmt.Errorf("save checkpoint %s with the broker's history id: %w", start, err)
		}
	}
	if held != nil {
		p.log.WithFields(logrus.Fields{"checkpoint": start.String(), "held": fmt.Sprintf("%s:%d:%d", held.File, held.Pos, held.Row)}).
			Info("the broker already holds changes after the checkpoint; they are not published again")
	}
	mem := newBudget(p.opts.MemoryBudget)
	var feed *binlog.SnapshotFeed
	if _, ok := p.src.(SnapshotSource); ok {
		feed = binlog.NewSnapshotFeed()
	}
	reader := p.src.Reader(ReaderHooks{
		Snapshots: feed,
		Reserve: func(ctx context.Context, n int) error {
			err := mem.reserve(ctx, n)
			p.mon.BudgetUsed(mem.inUse())
			return err
		},
		StreamState:  p.mon.SourceConnected,
		SkipGTIDs:    skip,
		SkipTxRows:   skipRows,
		ResumeByGTID: res.Moved,
	})
	sizer, _ := p.queue.(mq.SizeChecker)
	pl := &pipeline{
		reader: reader,
		batcher: &batcher{
			opts: p.opts.Batch,
			admit: &admitter{
				subject:    p.opts.Subject,
				deadLetter: p.opts.DeadLetterSubject,
				skip:       p.opts.SkipUnpublishable,
				sizer:      sizer,
				held:       held,
				log:        p.log,
				mon:        p.mon,
			},
			budget: mem,
		},
		queue:  p.queue,
		store:  p.store,
		lease:  p.lease,
		log:    p.log,
		mon:    p.mon,
		budget: mem,
	}
	if feed != nil {
		pl.snapshots = &snapshotRun{p: p, feed: feed, log: p.log, ackedNote: make(chan struct{}, 1)}
	}
	return pl.run(ctx, start, stop)
}

// failover moves the checkpoint cp to pos, the place its GTID state leads
// to on the server now connected, and saves it. On another server pos
// takes a new history id that continues cp's (the coordinates differ, the
// changes go on); consumers compare the two histories by GTID.
func (p *Producer) failover(ctx context.Context, cp, pos position.Position) (position.Position, error) {
	if pos.ServerID != cp.ServerID {
		pos.History, pos.Continues = position.NewHistory(), cp.History
	}
	if err := p.store.Save(ctx, pos); err != nil {
		return pos, fmt.Errorf("save the checkpoint moved by GTID to %s: %w", pos, err)
	}
	p.mon.FailedOver()
	p.mon.Checkpointed(pos, nil)
	p.log.WithFields(logrus.Fields{"from_server_id": cp.ServerID, "server_id": pos.ServerID, "from_checkpoint": cp.Describe(),
		"checkpoint": pos.Describe(), "continues": pos.Continues}).
		Warn("source failover: the checkpoint's server is not the one connected; going on from the place its GTID state leads to, " +
			"skipping the transactions already published")
	return pos, nil
}

// publishedBeforeFailover returns what the pass from start must not
// publish again, when start continues a history (a failover): the
// transactions its GTID state holds; and, when the broker's newest change
// is of the continued history and of a transaction T beyond that state,
// every transaction before T plus the first rows of T the broker holds
// (counted back from its newest message; the transaction was cut by the
// failover, its rows come in the same order on the new server). Without a
// history reader it is the state alone (the SDK then drops the replays).
func (p *Producer) publishedBeforeFailover(ctx context.Context, start position.Position) (string, binlog.TxRows, error) {
	if start.Continues == "" {
		return "", binlog.TxRows{}, nil
	}
	skip := position.MustGTIDState(start.GTID)
	h, ok := p.queue.(mq.HistoryReader)
	if !ok {
		return skip.String(), binlog.TxRows{}, nil
	}
	last, found, err := h.LastMessage(ctx)
	if err != nil {
		return "", binlog.TxRows{}, fmt.Errorf("read the newest message the broker holds: %w", err)
	}
	if !found {
		return skip.String(), binlog.TxRows{}, nil
	}
	src, err := p.ownMessage(last)
	if err != nil || src.History != start.Continues || src.GTID == "" || skip.Covers(src.GTID) {
		return skip.String(), binlog.TxRows{}, err
	}
	if !skip.AddBefore(src.GTID) {
		return skip.String(), binlog.TxRows{}, nil
	}
	rows := 1
	if scan, ok := p.queue.(mq.HistoryScanner); ok {
		for seq := last.Sequence; ; rows++ {
			m, found, err := scan.MessageBefore(ctx, seq)
			if err != nil {
				return "", binlog.TxRows{}, fmt.Errorf("count the rows the broker holds of transaction %s: %w", src.GTID, err)
			}
			if !found {
				break
			}
			prev, err := envelope.SourceOf(m.Data)
			if err != nil || prev.History != src.History || prev.GTID != src.GTID {
				break
			}
			seq = m.Sequence
		}
	}
	p.log.WithFields(logrus.Fields{"gtid": src.GTID, "rows": rows, "id": last.ID}).
		Info("the broker holds changes of the history before the failover up to this transaction, the first rows of it included; they are not published again")
	return skip.String(), binlog.TxRows{GTID: src.GTID, Rows: rows}, nil
}

// Close closes the queue New opened.
func (p *Producer) Close() error {
	if p.queue == nil {
		return nil
	}
	return p.queue.Close()
}
