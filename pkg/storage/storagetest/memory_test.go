package storagetest_test

import (
	"sync"
	"testing"

	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/storage/storagetest"
)

func TestMemoryKeepsTheContract(t *testing.T) {
	var mu sync.Mutex
	stores := map[string]*storagetest.Memory{}
	storagetest.Run(t, func(t *testing.T, name string) storage.PositionStorager {
		mu.Lock()
		defer mu.Unlock()
		if s, ok := stores[name]; ok {
			return s.Reopen()
		}
		s := storagetest.NewMemory(name)
		stores[name] = s
		return s
	})
}
