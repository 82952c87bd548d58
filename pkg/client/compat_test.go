package client_test

import (
	"context"
	"database/sql"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/test/e2e"
)

// DeletedAt mirrors gorm.DeletedAt: a sql.Scanner over a nullable time.
type DeletedAt sql.NullTime

func (d *DeletedAt) Scan(v any) error { return (*sql.NullTime)(d).Scan(v) }

// Holes is the model from the original dbsync README (gorm tags and all).
type Holes struct {
	ID                 uint
	CreatedAt          time.Time
	UpdatedAt          time.Time
	DeletedAt          DeletedAt `gorm:"index"`
	HoleId             uint      `gorm:"primarykey"`
	OwnerEmail         string
	Content            string `gorm:"type:varchar(1037)"`
	ImageUrl           string
	CreatedTimestamp   int64
	CreatedIp          string
	LastReplyTimestamp int64
	ThumbupNum         int
	ReplyNum           int
	FollowNum          int
	PvNum              int
	IsDeleted          bool
	ForestId           int
}

// TestOriginalAPI: Register(Holes{}, handler) with a func(msg []byte) error
// handler calling Build, as in the original README: insert leaves before
// zero, delete leaves after zero, update fills both.
func TestOriginalAPI(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		e.DB.Exec(t, "CREATE DATABASE treehole", `CREATE TABLE treehole.holes (
			id BIGINT UNSIGNED, created_at DATETIME(3), updated_at DATETIME(3), deleted_at DATETIME(3) NULL,
			hole_id BIGINT UNSIGNED PRIMARY KEY, owner_email VARCHAR(191), content VARCHAR(1037), image_url VARCHAR(255),
			created_timestamp BIGINT, created_ip VARCHAR(64), last_reply_timestamp BIGINT,
			thumbup_num INT, reply_num INT, follow_num INT, pv_num INT, is_deleted TINYINT(1), forest_id INT)`)
		c := newClient(t, e, "c-compat", func(cfg *client.Config) { cfg.Database = "treehole" })
		type pair struct{ before, after Holes }
		got := make(chan pair, 10)
		handler := func(msg []byte) error {
			var before, after Holes
			if err := client.Build(&before, &after, msg); err != nil {
				return err
			}
			got <- pair{before, after}
			return nil
		}
		if err := c.Register(Holes{}, handler); err != nil {
			t.Fatal(err)
		}
		e.DB.Exec(t,
			`INSERT INTO treehole.holes VALUES (1, '2026-11-21 08:00:00.125', '2026-11-21 08:00:00.125', NULL, 42, 'a@b.c', '你好', '', 1763712000, '10.0.0.1', 0, 3, 2, 1, 99, 0, 7)`,
			`UPDATE treehole.holes SET thumbup_num = 4, deleted_at = '2026-11-22 09:00:00' WHERE hole_id = 42`,
			`DELETE FROM treehole.holes WHERE hole_id = 42`)
		wait := func() pair {
			select {
			case p := <-got:
				return p
			case <-time.After(30 * time.Second):
				t.Fatal("no change within 30s")
			}
			panic("unreachable")
		}
		ins := wait()
		if ins.before != (Holes{}) || ins.after.HoleId != 42 || ins.after.Content != "你好" || ins.after.ThumbupNum != 3 ||
			ins.after.PvNum != 99 || ins.after.ForestId != 7 || ins.after.DeletedAt.Valid ||
			!ins.after.CreatedAt.Equal(time.Date(2026, 11, 21, 8, 0, 0, 125e6, time.UTC)) {
			t.Errorf("insert: before %+v after %+v", ins.before, ins.after)
		}
		upd := wait()
		if upd.before.ThumbupNum != 3 || upd.after.ThumbupNum != 4 || !upd.after.DeletedAt.Valid ||
			!upd.after.DeletedAt.Time.Equal(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("update: before %+v after %+v", upd.before, upd.after)
		}
		del := wait()
		if del.after != (Holes{}) || del.before.HoleId != 42 {
			t.Errorf("delete: before %+v after %+v", del.before, del.after)
		}
		if err := c.Register(struct{ X int }{}, handler); err == nil {
			t.Error("Register of an anonymous struct without a database did not fail")
		}
	})
}

// TestBroadcastAndQueueGroup: every ClientID receives every change; members
// of a queue group share them, each change going to exactly one member.
func TestBroadcastAndQueueGroup(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
		var mu sync.Mutex
		seen := map[string][]int64{}
		subscribe := func(clientID, group string) {
			c := newClient(t, e, clientID, func(cfg *client.Config) { cfg.QueueGroup = group })
			if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
				mu.Lock()
				seen[clientID] = append(seen[clientID], ch.After.ID)
				mu.Unlock()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		subscribe("broadcast-a", "")
		subscribe("broadcast-b", "")
		subscribe("worker-1", "workers")
		subscribe("worker-2", "workers")
		const n = 60
		for i := 1; i <= n; i++ {
			e.DB.Exec(t, "INSERT INTO shop.item VALUES ("+strconv.Itoa(i)+", 'x')")
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			done := len(seen["broadcast-a"]) == n && len(seen["broadcast-b"]) == n && len(seen["worker-1"])+len(seen["worker-2"]) == n
			mu.Unlock()
			if done {
				break
			}
			if time.Now().After(deadline) {
				mu.Lock()
				t.Fatalf("received: a %d, b %d, workers %d+%d of %d", len(seen["broadcast-a"]), len(seen["broadcast-b"]), len(seen["worker-1"]), len(seen["worker-2"]), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		union := map[int64]int{}
		for _, w := range []string{"worker-1", "worker-2"} {
			for _, id := range seen[w] {
				union[id]++
			}
		}
		if len(union) != n {
			t.Fatalf("the queue group handled %d distinct changes, want %d", len(union), n)
		}
		for id, k := range union {
			if k != 1 {
				t.Fatalf("change %d went to %d group members", id, k)
			}
		}
		// Kafka shares a group's partitions among its members, and a
		// table's topic has one partition: one member takes them all, the
		// other stands by.
		if broker != e2e.Kafka && (len(seen["worker-1"]) == 0 || len(seen["worker-2"]) == 0) {
			t.Errorf("one group member got nothing: %d / %d", len(seen["worker-1"]), len(seen["worker-2"]))
		}
	})
}

// TestStartPosition: a new durable subscription starts at the first stored
// change by default, or only with new ones under StartAtNew.
func TestStartPosition(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, broker string) {
		e, _ := newEnv(t, broker)
		e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))",
			"INSERT INTO shop.item VALUES (1, 'old'), (2, 'old')")
		e.WaitFor("shop.item", 2, 30*time.Second)
		first, fresh := newRecorder(), newRecorder()
		for _, x := range []struct {
			id    string
			start client.StartPosition
			rec   *recorder
		}{{"c-first", client.StartAtFirst, first}, {"c-new", client.StartAtNew, fresh}} {
			c := newClient(t, e, x.id, func(cfg *client.Config) { cfg.StartAt = x.start })
			rec := x.rec
			if _, err := client.Subscribe(c, "shop", "item", func(ctx context.Context, ch client.Change[Item]) error {
				rec.add(ch.After.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		e.DB.Exec(t, "INSERT INTO shop.item VALUES (3, 'new')")
		first.waitCount(t, 3, 30*time.Second)
		fresh.waitCount(t, 1, 30*time.Second)
		time.Sleep(300 * time.Millisecond)
		if got := first.snapshot(); len(got) != 3 || got[0] != 1 || got[2] != 3 {
			t.Errorf("StartAtFirst got %v, want [1 2 3]", got)
		}
		if got := fresh.snapshot(); len(got) != 1 || got[0] != 3 {
			t.Errorf("StartAtNew got %v, want [3]", got)
		}
	})
}
