package storagetest

import (
	"context"
	"fmt"
	"sync"

	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// Memory is an in-memory storage.PositionStorager that keeps the contract
// (it passes Run) and lets a test look inside and break it: every save is
// recorded, the next Get or Save can be made to fail, and the checkpoint
// can vanish. Its methods are safe for concurrent use.
type Memory struct {
	name string
	data *memoryData
}

type memoryData struct {
	mu      sync.Mutex
	pos     *position.Position
	saves   []position.Position
	getErr  error
	saveErr error
}

var _ storage.PositionStorager = (*Memory)(nil)

// NewMemory returns an empty store; name appears in its errors.
func NewMemory(name string) *Memory {
	return &Memory{name: name, data: &memoryData{}}
}

// Reopen returns another handle on the same checkpoint, as opening a file
// or a key again would.
func (m *Memory) Reopen() *Memory { return &Memory{name: m.name, data: m.data} }

// Get implements storage.PositionStorager.
func (m *Memory) Get(ctx context.Context) (position.Position, error) {
	if err := ctx.Err(); err != nil {
		return position.Position{}, fmt.Errorf("memory store %s: %w", m.name, err)
	}
	d := m.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.getErr; err != nil {
		d.getErr = nil
		return position.Position{}, fmt.Errorf("memory store %s: %w", m.name, err)
	}
	if d.pos == nil {
		return position.Position{}, fmt.Errorf("memory store %s: %w", m.name, storage.ErrNoCheckpoint)
	}
	return *d.pos, nil
}

// Save implements storage.PositionStorager.
func (m *Memory) Save(ctx context.Context, pos position.Position) error {
	if err := pos.Validate(); err != nil {
		return fmt.Errorf("memory store %s: refusing to save checkpoint: %w", m.name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory store %s: %w", m.name, err)
	}
	d := m.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.saveErr; err != nil {
		d.saveErr = nil
		return fmt.Errorf("memory store %s: %w", m.name, err)
	}
	d.pos = &pos
	d.saves = append(d.saves, pos)
	return nil
}

// Delete implements storage.PositionStorager.
func (m *Memory) Delete(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory store %s: %w", m.name, err)
	}
	m.Vanish()
	return nil
}

// Close implements storage.PositionStorager; the checkpoint stays for
// Reopen.
func (m *Memory) Close() error { return nil }

// Saves returns every checkpoint saved so far, oldest first.
func (m *Memory) Saves() []position.Position {
	m.data.mu.Lock()
	defer m.data.mu.Unlock()
	return append([]position.Position(nil), m.data.saves...)
}

// Vanish removes the checkpoint, as a redis restarted without persistence
// would.
func (m *Memory) Vanish() {
	m.data.mu.Lock()
	m.data.pos = nil
	m.data.mu.Unlock()
}

// FailNextGet makes the next Get fail with err.
func (m *Memory) FailNextGet(err error) {
	m.data.mu.Lock()
	m.data.getErr = err
	m.data.mu.Unlock()
}

// FailNextSave makes the next Save fail with err, saving nothing.
func (m *Memory) FailNextSave(err error) {
	m.data.mu.Lock()
	m.data.saveErr = err
	m.data.mu.Unlock()
}
