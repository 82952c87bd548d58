package producer

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/monitor"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/position"
)

// admitter decides what becomes of each row change before it is batched:
// a change the broker already holds from an earlier pass is dropped, and a
// change that cannot be published either stops the pass or, when its
// table's policy is "skip" (Tables.OnUnpublishable), is replaced by a
// marker on the dead-letter subject.
type admitter struct {
	subject func(db, table string) string
	// subjects caches subject's answers.
	subjects map[[2]string]string
	// deadLetter is the subject of the markers.
	deadLetter string
	// skip reports whether a table's unpublishable changes are skipped.
	skip func(db, table string) bool
	// sizer knows the broker's size limit; nil when it cannot tell.
	sizer mq.SizeChecker
	// sizing is the message handed to sizer.
	sizing mq.Message
	// held is the newest change the broker holds of this pass's binlog
	// history, at or after the pass's start; changes up to it are dropped
	// (the broker stores every change of a history in order, so it holds
	// all of them). nil when there is nothing to drop.
	held *envelope.Source
	log  logrus.FieldLogger
	mon  *monitor.Monitor
}

// verdict is what admit decided for one row.
type verdict int

const (
	publishRow  verdict = iota // publish the row's envelope
	publishMark                // publish a dead-letter marker instead
	dropRow                    // the broker already holds it
)

// admit returns what to do with row, and the message to publish (the row's
// own, or its marker). It fails, with a permanent error naming the table, the
// change and the fix, on a change that cannot be published when the
// table's policy is "stop".
func (a *admitter) admit(row *binlog.Row) (mq.Message, verdict, error) {
	if a.held != nil && row.Type != envelope.TypeRead {
		// (A snapshot row is published at a boundary after the binlog's
		// end when its chunk was read, so after anything the broker holds.)
		if !after(row.Source(), *a.held) {
			return mq.Message{}, dropRow, nil
		}
		a.log.WithFields(logrus.Fields{"held": a.held.File + fmt.Sprintf(":%d:%d", a.held.Pos, a.held.Row), "first": row.ID}).
			Info("skipped the changes the broker already holds; publishing from here")
		a.held = nil
	}
	key := [2]string{row.DB, row.Table}
	subject, ok := a.subjects[key]
	if !ok {
		if a.subjects == nil {
			a.subjects = map[[2]string]string{}
		}
		subject = a.subject(row.DB, row.Table)
		a.subjects[key] = subject
	}
	if row.Unpublishable != "" {
		return a.marker(row, subject, "table", row.Unpublishable), publishMark, nil
	}
	msg := mq.Message{Subject: subject, ID: row.ID, Data: row.Data}
	if row.Type == envelope.TypeRead {
		// Snapshot rows of several tables share their boundary's
		// coordinate: the broker's de-duplication id names the table.
		msg.ID = row.ID + ":" + row.DB + "." + row.Table
	}
	if a.sizer == nil {
		return msg, publishRow, nil
	}
	// CheckSize gets the admitter's scratch copy: a pointer to msg itself
	// would move it to the heap for every row.
	a.sizing = msg
	err := a.sizer.CheckSize(&a.sizing)
	if err == nil {
		return msg, publishRow, nil
	}
	if !errors.Is(err, mq.ErrTooLarge) {
		return mq.Message{}, 0, err
	}
	if a.skip != nil && a.skip(row.DB, row.Table) {
		return a.marker(row, subject, "too_large", err.Error()), publishMark, nil
	}
	return mq.Message{}, 0, failure.WithFix(failure.Permanent(fmt.Errorf("table %s.%s: change %s (%s at binlog %s:%d) cannot be published: %w; "+
		"nothing after it was published", row.DB, row.Table, row.ID, row.Type, row.Event.File, row.Event.Pos, err)),
		fmt.Sprintf("raise the broker's limit (the NATS server's max_payload, JetStream.MaxPayload for the embedded server, or the stream's "+
			"max message size) and restart, or set Tables.OnUnpublishable to skip for %s.%s to publish a marker on %s instead",
			row.DB, row.Table, a.deadLetter))
}

// marker builds the dead-letter message that stands for row, counts and
// logs it.
func (a *admitter) marker(row *binlog.Row, subject, kind, reason string) mq.Message {
	m := envelope.Unpublishable{V: envelope.Version, Kind: envelope.KindUnpublishable, ID: row.ID, Source: row.Source(),
		DB: row.DB, Table: row.Table, Type: row.Type, Subject: subject, Reason: reason, Size: len(row.Data)}
	data, _ := json.Marshal(m) // strings, numbers and a time: cannot fail
	a.mon.Unpublishable(row.DB, row.Table, kind)
	a.log.WithFields(logrus.Fields{"table": row.DB + "." + row.Table, "id": row.ID, "subject": subject,
		"dead_letter_subject": a.deadLetter, "reason": reason}).
		Error("change cannot be published; a marker goes to the dead-letter subject instead (Tables.OnUnpublishable skip)")
	// Its own id: the row may become publishable later (a raised limit)
	// and must not then be taken for a duplicate of its marker.
	return mq.Message{Subject: a.deadLetter, ID: row.ID + ":" + envelope.KindUnpublishable, Data: data}
}

// after reports whether change a comes after change b of the same history.
func after(a, b envelope.Source) bool {
	switch (position.Position{File: a.File, Pos: a.Pos}).Compare(position.Position{File: b.File, Pos: b.Pos}) {
	case 1:
		return true
	case -1:
		return false
	}
	return a.Row > b.Row
}
