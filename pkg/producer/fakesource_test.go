package producer_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/monitor"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/producer"
)

// fakeFile is the binlog file of fakeSource.
const fakeFile = "mysql-bin.000001"

// fakeSource is a source server in memory: a binlog of transactions on
// table shop.t in one file, transaction i holding its rows at position
// 100*(i+1) and ending at 100*(i+1)+50. Every pass's reader streams it from
// its start position and then waits for more transactions (Append) until
// it is stopped.
type fakeSource struct {
	mu   sync.Mutex
	txs  [][]binlog.Row
	more chan struct{} // closed and replaced by Append
	// starts records where each pass started.
	starts []position.Position
}

func newFakeSource() *fakeSource { return &fakeSource{more: make(chan struct{})} }

// Append writes a transaction of rows row changes and returns its end.
func (s *fakeSource) Append(rows int) position.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := uint32(100 * (len(s.txs) + 1))
	ev := &envelope.Source{Name: "fake", File: fakeFile, Pos: at}
	tx := make([]binlog.Row, rows)
	for i := range tx {
		id := fmt.Sprintf("%s:%d:%d", fakeFile, at, i)
		tx[i] = binlog.Row{DB: "shop", Table: "t", Type: "insert", ID: id, Event: ev, Index: i, Data: []byte(`{"id":"` + id + `"}`)}
	}
	s.txs = append(s.txs, tx)
	close(s.more)
	s.more = make(chan struct{})
	return position.Position{File: fakeFile, Pos: at + 50}
}

// IDs returns the ids of every row change written, in binlog order, and the
// index in it where each transaction starts.
func (s *fakeSource) IDs() (ids []string, txStart map[int]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	txStart = map[int]bool{}
	for _, tx := range s.txs {
		txStart[len(ids)] = true
		for _, r := range tx {
			ids = append(ids, r.ID)
		}
	}
	return ids, txStart
}

// Starts returns where each pass started.
func (s *fakeSource) Starts() []position.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]position.Position(nil), s.starts...)
}

func (s *fakeSource) end() position.Position {
	return position.Position{File: fakeFile, Pos: uint32(100*len(s.txs) + 50)}
}

func (s *fakeSource) CurrentPosition(context.Context) (position.Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.txs) == 0 {
		return position.Position{File: fakeFile, Pos: 4}, nil
	}
	return s.end(), nil
}

func (s *fakeSource) OldestPosition(context.Context) (position.Position, error) {
	return position.Position{File: fakeFile, Pos: 4}, nil
}

func (s *fakeSource) CheckResumable(_ context.Context, pos position.Position) error {
	if pos.File != fakeFile {
		return failure.Permanent(fmt.Errorf("fake source: binlog %s purged", pos.File))
	}
	return nil
}

func (s *fakeSource) ResumeAt(ctx context.Context, cp position.Position) (binlog.Resume, error) {
	return binlog.Resume{Position: cp}, s.CheckResumable(ctx, cp)
}

func (s *fakeSource) HoldsPosition(context.Context, position.Position) bool { return true }

func (s *fakeSource) OpenMonitor(context.Context) (monitor.Source, func(), error) {
	return nil, func() {}, nil
}

func (s *fakeSource) Reader(hooks producer.ReaderHooks) producer.EventReader {
	return &fakeReader{src: s, hooks: hooks}
}

type fakeReader struct {
	src   *fakeSource
	hooks producer.ReaderHooks
}

// Run streams the transactions ending after start, then waits for more;
// when stop is closed it returns nil (it is never inside a transaction
// then).
func (r *fakeReader) Run(ctx context.Context, start position.Position, stop <-chan struct{}, out chan<- binlog.Event) error {
	s := r.src
	s.mu.Lock()
	s.starts = append(s.starts, start)
	s.mu.Unlock()
	if r.hooks.StreamState != nil {
		r.hooks.StreamState(true, nil)
	}
	next := 0
	for {
		s.mu.Lock()
		txs, more := s.txs, s.more
		s.mu.Unlock()
		for ; next < len(txs); next++ {
			end := position.Position{File: fakeFile, Pos: uint32(100*(next+1) + 50), History: start.History}
			if end.Compare(start) <= 0 {
				continue
			}
			ev := binlog.Event{Rows: txs[next]}
			for _, row := range ev.Rows {
				ev.Bytes += len(row.Data)
			}
			if r.hooks.Reserve != nil {
				if err := r.hooks.Reserve(ctx, ev.Bytes); err != nil {
					return err
				}
			}
			for _, e := range []binlog.Event{ev, {Boundary: true, Position: end}} {
				select {
				case out <- e:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		select {
		case <-more:
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
