package wiring_test

import (
	"context"
	"fmt"
	"os"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/wiring"
)

// OpenStore opens the store the config names; the admin commands and the
// producer open it this way.
func ExampleOpenStore() {
	dir, _ := os.MkdirTemp("", "dbsync-example")
	defer os.RemoveAll(dir)
	cfg := &config.Config{DataDir: dir}
	cfg.ApplyDefaults() // bolt, pos.db, bucket "pos", key "key"

	ctx := context.Background()
	store, err := wiring.OpenStore(ctx, cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	lease, err := wiring.HoldStore(ctx, store, "example") // a redis lease; bolt's file lock needs none
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lease.Release()
	if err := store.Save(ctx, position.Position{File: "mysql-bin.000001", Pos: 4}); err != nil {
		fmt.Println(err)
	}
	pos, _ := store.Get(ctx)
	fmt.Println(wiring.DescribeStore(cfg) == "bolt file "+dir+"/pos.db", pos)
	// Output:
	// true mysql-bin.000001:4
}
