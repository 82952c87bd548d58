package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// A checkpoint store starts empty (storage.ErrNoCheckpoint), keeps what
// Save stored across a reopen, and refuses a position that cannot be one.
func ExampleOpenBolt() {
	dir, _ := os.MkdirTemp("", "dbsync-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	path := filepath.Join(dir, "pos.db")

	store, err := storage.OpenBolt(storage.BoltOptions{Path: path}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := store.Get(ctx); errors.Is(err, storage.ErrNoCheckpoint) {
		fmt.Println("first start: no checkpoint")
	}
	if err := store.Save(ctx, position.Position{File: "mysql-bin.000003", Pos: 1234, GTID: "0-1-42"}); err != nil {
		fmt.Println(err)
	}
	if err := store.Save(ctx, position.Position{File: "mysql-bin.000003", Pos: 2}); err != nil {
		fmt.Println("refused:", strings.Contains(err.Error(), "before the first event"))
	}
	store.Close()

	store, _ = storage.OpenBolt(storage.BoltOptions{Path: path}, nil)
	defer store.Close()
	pos, _ := store.Get(ctx)
	fmt.Println("after a restart:", pos)
	// Output:
	// first start: no checkpoint
	// refused: true
	// after a restart: mysql-bin.000003:1234 (gtid 0-1-42)
}
