package producer

import (
	"context"
	"time"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/monitor"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/position"
)

// BatchOptions decide when a batch is handed to the publisher.
type BatchOptions struct {
	// MaxRows flushes a batch holding this many rows.
	MaxRows int
	// MaxBytes flushes a batch holding this many bytes of envelopes.
	MaxBytes int
	// MaxWait flushes a batch this long after its first row.
	MaxWait time.Duration
	// FlushWhenIdle hands the batch over as soon as the binlog stream has no
	// further event waiting, so a lone commit goes out within milliseconds.
	FlushWhenIdle bool
}

// batch is a run of messages plus the checkpoint that becomes safe once every
// message of this batch and of all earlier batches is acknowledged.
type batch struct {
	msgs []mq.Message
	// bytes is the size of the row envelopes in msgs, reserved from the
	// pass's budget until the batch is acknowledged.
	bytes int
	// checkpoint is the last transaction boundary covered by the batch, nil
	// when the batch ends inside the same transaction it started in.
	checkpoint *position.Position
	// force asks for an immediate checkpoint (rotation, DDL).
	force bool
	// eventTime is the binlog time of the newest event in the batch.
	eventTime time.Time
	// rows counts the batch's row changes per table and type, and
	// transactions the transaction boundaries it covers (for metrics).
	rows         map[monitor.RowKey]int
	transactions int
	// snapshotRows counts the snapshot rows the batch publishes, as
	// themselves or as dead-letter markers.
	snapshotRows int
}

func (b *batch) empty() bool { return len(b.msgs) == 0 && b.checkpoint == nil }

// batcher groups reader events into batches, after admit decided what
// becomes of each row. It owns out and closes it when events is closed
// (after handing over what it holds) or ctx is done.
type batcher struct {
	opts  BatchOptions
	admit *admitter
	// budget gets back the bytes of rows that are not published as they are.
	budget *budget
}

func (bt *batcher) run(ctx context.Context, events <-chan binlog.Event, out chan<- *batch) error {
	defer close(out)
	cur := &batch{}
	// timer runs MaxWait from a batch's first row; timerC is its channel
	// while it runs, nil otherwise. One timer serves every batch.
	timer := time.NewTimer(bt.opts.MaxWait)
	timer.Stop()
	defer timer.Stop()
	var timerC <-chan time.Time
	stopTimer := func() {
		timer.Stop()
		timerC = nil
	}

	send := func() error {
		stopTimer()
		select {
		case out <- cur:
		case <-ctx.Done():
			return ctx.Err()
		}
		cur = &batch{msgs: make([]mq.Message, 0, min(bt.opts.MaxRows, 1024))}
		return nil
	}
	startTimer := func() {
		if timerC == nil {
			timer.Reset(bt.opts.MaxWait)
			timerC = timer.C
		}
	}

	for {
		if cur.force {
			if err := send(); err != nil {
				return err
			}
		}
		// With nothing waiting in the stream, offer the batch to the
		// publisher, but keep filling it while the publisher is busy.
		var offer chan<- *batch
		if !cur.empty() && bt.opts.FlushWhenIdle && len(events) == 0 {
			offer = out
		}
		var ev binlog.Event
		var ok bool
		select {
		case offer <- cur:
			stopTimer()
			cur = &batch{msgs: make([]mq.Message, 0, 64)}
			continue
		case ev, ok = <-events:
		case <-timerC:
			timerC = nil
			if err := send(); err != nil {
				return err
			}
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			if !cur.empty() {
				return send()
			}
			return nil
		}
		for i := range ev.Rows {
			row := &ev.Rows[i]
			msg, v, err := bt.admit.admit(row)
			if err != nil {
				return err
			}
			if v != publishRow {
				bt.budget.release(len(row.Data))
			}
			if v == dropRow {
				continue
			}
			cur.msgs = append(cur.msgs, msg)
			if row.Type == envelope.TypeRead {
				cur.snapshotRows++
			}
			if v == publishRow {
				cur.bytes += len(row.Data)
				if cur.rows == nil {
					cur.rows = map[monitor.RowKey]int{}
				}
				cur.rows[monitor.RowKey{DB: row.DB, Table: row.Table, Type: row.Type}]++
			}
			startTimer()
			if len(cur.msgs) >= bt.opts.MaxRows || cur.bytes >= bt.opts.MaxBytes {
				cur.eventTime = ev.Time
				if err := send(); err != nil {
					return err
				}
			}
		}
		if len(ev.Rows) > 0 || ev.Boundary {
			cur.eventTime = ev.Time
		}
		if ev.Boundary {
			// One Position per batch, overwritten by each later boundary.
			if cur.checkpoint == nil {
				cur.checkpoint = new(position.Position)
			}
			*cur.checkpoint = ev.Position
			if !ev.Rotate {
				cur.transactions++
			}
			cur.force = cur.force || ev.Flush
			startTimer()
		}
	}
}
