package storage_test

import (
	"path/filepath"
	"testing"

	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/storage/storagetest"
	"github.com/dbsync/dbsync/test/testenv"
)

func TestBoltKeepsTheContract(t *testing.T) {
	dir := t.TempDir()
	storagetest.Run(t, func(t *testing.T, name string) storage.PositionStorager {
		s, err := storage.OpenBolt(storage.BoltOptions{Path: filepath.Join(dir, name+".db")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestRedisKeepsTheContract(t *testing.T) {
	r := testenv.StartRedis(t)
	storagetest.Run(t, func(t *testing.T, name string) storage.PositionStorager {
		s, err := storage.OpenRedis(t.Context(), storage.RedisOptions{Addr: r.Addr(), Key: "dbsync:test:" + name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestRedisKeepsTheLeaseContract(t *testing.T) {
	r := testenv.StartRedis(t)
	storagetest.RunLeaser(t, func(t *testing.T, name string) storage.PositionStorager {
		s, err := storage.OpenRedis(t.Context(), storage.RedisOptions{Addr: r.Addr(), Key: "dbsync:test:" + name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, name string) {
		if err := r.Client(t).Del(t.Context(), "dbsync:test:"+name+":lease").Err(); err != nil {
			t.Fatal(err)
		}
	})
}
