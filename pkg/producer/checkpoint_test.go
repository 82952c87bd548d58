package producer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/storage/storagetest"
)

// countingStore counts its saves.
type countingStore struct {
	storage.PositionStorager
	saves atomic.Int32
}

func (s *countingStore) Save(ctx context.Context, pos position.Position) error {
	s.saves.Add(1)
	return s.PositionStorager.Save(ctx, pos)
}

// TestCheckpointerSpacesSaves: a stream of offers (a burst of small
// acknowledged batches) is saved at most once per checkpointSpacing, and
// the last offer is saved at the close.
func TestCheckpointerSpacesSaves(t *testing.T) {
	store := &countingStore{PositionStorager: storagetest.NewMemory("cp")}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	cp := newCheckpointer(store, log, func(position.Position, error) {})
	done := make(chan error, 1)
	go func() { done <- cp.run(context.Background()) }()
	start := time.Now()
	const offers = 200
	for i := 1; i <= offers; i++ {
		cp.offer(position.Position{File: "f.000001", Pos: uint32(100 + i)})
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cp.close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, most := int(store.saves.Load()), int(elapsed/checkpointSpacing)+2; n < 2 || n > most {
		t.Errorf("%d offers over %v: %d saves, want 2..%d", offers, elapsed.Round(time.Millisecond), n, most)
	}
	if got, err := store.Get(context.Background()); err != nil || got.Pos != 100+offers {
		t.Errorf("saved %v (%v), want the last offer, position %d", got, err, 100+offers)
	}
}
