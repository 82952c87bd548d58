package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/monitor"
	"github.com/dbsync/dbsync/pkg/mq"
)

// limit is a SizeChecker refusing messages over n bytes of data.
type limit int

func (l limit) CheckSize(m *mq.Message) error {
	if len(m.Data) > int(l) {
		return fmt.Errorf("%w: %d bytes over %d", mq.ErrTooLarge, len(m.Data), int(l))
	}
	return nil
}

func row(table string, pos uint32, size int) *binlog.Row {
	return &binlog.Row{DB: "shop", Table: table, Type: envelope.TypeInsert, ID: fmt.Sprintf("bin.000001:%d:0", pos),
		Event: &envelope.Source{Name: "src", History: "h", File: "bin.000001", Pos: pos}, Data: make([]byte, size)}
}

func newAdmitter(skip bool, held *envelope.Source) *admitter {
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	return &admitter{subject: func(db, t string) string { return "p." + db + "." + t }, deadLetter: "p._dbsync.deadletter",
		skip: func(string, string) bool { return skip }, sizer: limit(100), held: held, log: log, mon: monitor.New(time.Minute)}
}

func TestAdmitter(t *testing.T) {
	t.Run("publishes what fits", func(t *testing.T) {
		m, v, err := newAdmitter(false, nil).admit(row("orders", 10, 50))
		if err != nil || v != publishRow || m.Subject != "p.shop.orders" || m.ID != "bin.000001:10:0" {
			t.Fatalf("%+v %d %v", m, v, err)
		}
	})
	t.Run("stop: a change too large halts with the table, the change and the fix", func(t *testing.T) {
		_, _, err := newAdmitter(false, nil).admit(row("docs", 20, 500))
		if !failure.IsPermanent(err) || !errors.Is(err, mq.ErrTooLarge) {
			t.Fatalf("err %v, want a fatal ErrTooLarge", err)
		}
		for _, want := range []string{"shop.docs", "bin.000001:20:0", "larger than the broker accepts"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		for _, want := range []string{"max_payload", "Tables.OnUnpublishable", "p._dbsync.deadletter"} {
			if fix := failure.Fix(err); !strings.Contains(fix, want) {
				t.Errorf("fix lacks %q: %s", want, fix)
			}
		}
	})
	t.Run("skip: a marker on the dead-letter subject names the change", func(t *testing.T) {
		a := newAdmitter(true, nil)
		m, v, err := a.admit(row("docs", 20, 500))
		if err != nil || v != publishMark || m.Subject != "p._dbsync.deadletter" || m.ID == "bin.000001:20:0" {
			t.Fatalf("%+v %d %v", m, v, err)
		}
		u, err := envelope.DecodeUnpublishable(m.Data)
		if err != nil || u.ID != "bin.000001:20:0" || u.Table != "docs" || u.Subject != "p.shop.docs" || u.Size != 500 || !strings.Contains(u.Reason, "over") {
			t.Fatalf("marker %+v, %v", u, err)
		}
		if src, err := envelope.SourceOf(m.Data); err != nil || src.Pos != 20 {
			t.Fatalf("the marker's source coordinate: %+v, %v", src, err)
		}
	})
	t.Run("a table the reader could not encode becomes a marker", func(t *testing.T) {
		r := row("gbk", 30, 0)
		r.Data, r.Unpublishable = nil, "column \"c\": character set gbk is not supported"
		m, v, err := newAdmitter(true, nil).admit(r)
		if err != nil || v != publishMark || !strings.Contains(string(m.Data), "gbk") {
			t.Fatalf("%s %d %v", m.Data, v, err)
		}
	})
	t.Run("changes the broker already holds are dropped, up to the newest it holds", func(t *testing.T) {
		held := row("orders", 20, 0).Source()
		a := newAdmitter(false, &held)
		for _, c := range []struct {
			pos  uint32
			want verdict
		}{{10, dropRow}, {20, dropRow}, {30, publishRow}, {15, publishRow}} {
			if _, v, err := a.admit(row("orders", c.pos, 10)); err != nil || v != c.want {
				t.Fatalf("pos %d: verdict %d (%v), want %d", c.pos, v, err, c.want)
			}
		}
	})
}

func TestBudget(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.reserve(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if err := b.reserve(ctx, 40); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.reserve(ctx, 10) }()
	select {
	case err := <-got:
		t.Fatalf("reserve over the budget returned at once: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.release(60)
	if err := <-got; err != nil || b.inUse() != 50 {
		t.Fatalf("reserve after a release: %v, in use %d", err, b.inUse())
	}
	// An event larger than the whole budget goes through once nothing else is held.
	b.release(50)
	if err := b.reserve(ctx, 1000); err != nil || b.inUse() != 1000 {
		t.Fatalf("oversized reserve: %v, in use %d", err, b.inUse())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.reserve(cctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("reserve with a done ctx: %v", err)
	}
}
