package producer

import (
	"context"
	"sync"
)

// budget bounds the bytes of encoded row changes a pass holds between the
// reader and the broker's acknowledgement (the read-ahead, the batch being
// filled and the batches in flight share it). The reader reserves an
// event's bytes before handing it on; they are released when the batch
// holding them is acknowledged, or when its rows are dropped.
type budget struct {
	limit int

	mu   sync.Mutex
	used int
	// freed is closed (and replaced) whenever bytes are released.
	freed chan struct{}
}

// newBudget returns a budget of limit bytes; nil (no bound) when limit is
// not positive.
func newBudget(limit int) *budget {
	if limit <= 0 {
		return nil
	}
	return &budget{limit: limit, freed: make(chan struct{})}
}

// reserve takes n bytes, waiting while they do not fit. An event larger
// than the whole budget is let through once nothing else is held, so it
// cannot block forever. It fails only when ctx is done.
func (b *budget) reserve(ctx context.Context, n int) error {
	if b == nil {
		return nil
	}
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives back n bytes.
func (b *budget) release(n int) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// inUse returns the bytes held now.
func (b *budget) inUse() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
