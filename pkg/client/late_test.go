package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// itemChange is a hand-written insert of shop.item id at binlog pos of
// mysql-bin.000001, naming prev.
func itemChange(t *testing.T, id int64, pos uint32, prev string) []byte {
	t.Helper()
	env := envelope.Envelope{V: envelope.Version, ID: fmt.Sprintf("mysql-bin.000001:%d:0", pos), Prev: prev,
		Source: envelope.Source{Name: "src", ServerID: 1, History: "h1", File: "mysql-bin.000001", Pos: pos, TS: time.Now().UTC().Truncate(time.Second)},
		DB:     "shop", Table: "item", Type: envelope.TypeInsert, PK: []string{"id"},
		After: map[string]json.RawMessage{"id": json.RawMessage(strconv.FormatInt(id, 10)), "name": json.RawMessage(`"x"`)}}
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestLateChangeIsHandedOver: NATS Streaming stored change 3 without change
// 2 (its acknowledgement failed, the producer had already sent 3); the
// producer's replay then brings 2 and 3 again. The subscription hands 2
// over (late, reported), drops the second 3 and goes on with 4, also
// across a consumer restart with a bolt dedup file.
func TestLateChangeIsHandedOver(t *testing.T) {
	t.Parallel()
	s := testenv.StartStan(t)
	pub := s.Conn(t, "injector")
	publish := func(data []byte) {
		if err := pub.Publish("shop.item", data); err != nil {
			t.Fatal(err)
		}
	}
	dedupPath := filepath.Join(t.TempDir(), "dedup.db")
	var log errorLog
	rec := newRecorder()
	start := func() (stop func()) {
		dedup, err := client.OpenBoltDedup(dedupPath)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.NewClient(client.Config{ClusterID: s.ClusterID, ClientID: "c-late", Host: "nats://" + s.Host, Port: strconv.Itoa(s.Port),
			Dedup: dedup, OnError: log.add, RetryMin: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Subscribe(c, "shop", "item", func(_ context.Context, ch client.Change[Item]) error {
			rec.add(ch.After.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		stop = func() { _ = c.Close(); _ = dedup.Close() }
		t.Cleanup(stop)
		return stop
	}
	stop := start()
	one, two, three := "mysql-bin.000001:100:0", "mysql-bin.000001:200:0", "mysql-bin.000001:300:0"
	publish(itemChange(t, 1, 100, ""))
	publish(itemChange(t, 3, 300, two)) // stored without 2
	rec.waitCount(t, 2, 20*time.Second)
	stop() // the consumer restarts meanwhile
	start()
	publish(itemChange(t, 1, 100, ""))  // the replay from the checkpoint
	publish(itemChange(t, 2, 200, one)) // never handed over
	publish(itemChange(t, 3, 300, two))
	publish(itemChange(t, 4, 400, three))
	rec.waitCount(t, 4, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := rec.snapshot()
	if fmt.Sprint(got) != "[1 3 2 4]" {
		t.Fatalf("handed over %v, want [1 3 2 4]: 2 late, no duplicate", got)
	}
	if n := count[*client.LateChangeError](&log); n != 1 {
		t.Fatalf("%d late changes reported, want 1: %v", n, log.errs)
	}
}

// TestFarFutureCoordinateDoesNotHideChanges: a crafted message with a
// far-future coordinate of the same history reaches a consumer with a bolt
// dedup file; the real changes after it are still handed over (reported as
// late), not dropped as replays.
func TestFarFutureCoordinateDoesNotHideChanges(t *testing.T) {
	t.Parallel()
	e, _ := newEnv(t, e2e.Stan)
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
	dedup, err := client.OpenBoltDedup(filepath.Join(e.Dir, "dedup.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dedup.Close() })
	var log errorLog
	rec := newRecorder()
	c := newClient(t, e, "c-far", func(cfg *client.Config) { cfg.Dedup, cfg.OnError = dedup, log.add })
	if _, err := client.Subscribe(c, "shop", "item", func(_ context.Context, ch client.Change[Item]) error {
		rec.add(ch.After.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.DB.Exec(t, "INSERT INTO shop.item VALUES (1, 'real')")
	rec.waitCount(t, 1, 30*time.Second)
	real := string(e.Stan.ReadChannel(t, "shop.item")[0])
	var env envelope.Envelope
	if err := json.Unmarshal([]byte(real), &env); err != nil {
		t.Fatal(err)
	}
	crafted := strings.ReplaceAll(real, env.Source.File, "mysql-bin.999999")
	crafted = strings.Replace(crafted, `"after":{"id":1,`, `"after":{"id":999,`, 1)
	if err := e.Stan.Conn(t, "attacker").Publish("shop.item", []byte(crafted)); err != nil {
		t.Fatal(err)
	}
	rec.waitCount(t, 2, 30*time.Second)
	e.DB.Exec(t, "INSERT INTO shop.item VALUES (2, 'real')", "INSERT INTO shop.item VALUES (3, 'real')")
	rec.waitCount(t, 4, 30*time.Second)
	if got := fmt.Sprint(rec.snapshot()); got != "[1 999 2 3]" {
		t.Fatalf("handed over %s, want [1 999 2 3]", got)
	}
	if n := count[*client.LateChangeError](&log); n != 2 {
		t.Fatalf("%d late changes reported, want 2 (the real ones after the crafted coordinate): %v", n, log.errs)
	}
}
