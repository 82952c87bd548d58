package producer_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestLostCheckpointIsNotAFirstStart: on JetStream, a producer whose
// checkpoint file disappeared while it was down finds this source's changes
// in the stream and refuses to start at the current position. Recovered as
// its error says, it publishes nothing twice and keeps the stream's binlog
// history id.
func TestLostCheckpointIsNotAFirstStart(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	establishCheckpoint(e)
	if err := os.Remove(filepath.Join(e.Dir, "pos.db")); err != nil {
		t.Fatal(err)
	}
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (2)")
	p := e.Start()
	if code := p.Wait(60 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
	}
	for _, want := range []string{"the checkpoint was lost", "checkpoint set -gtid"} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("output lacks %q:\n%s", want, p.Output())
		}
	}
	if strings.Contains(p.Output(), "NO CHECKPOINT FOUND") {
		t.Error("it started at the current position anyway")
	}

	// As the error says: set the checkpoint to the last transaction known to
	// be published (here: before the first insert, so id 1 is replayed).
	// The stream keeps each change once, and the new changes carry the
	// binlog history id the stream's have (the same history).
	first := e.Read("shop.t")[0]
	gtid := first.Source.GTID
	parts := strings.Split(gtid, "-")
	seq, _ := strconv.Atoi(parts[2])
	if code, out, errOut := e.Command("checkpoint", "set", "-gtid", parts[0]+"-"+parts[1]+"-"+strconv.Itoa(seq-1)); code != 0 {
		t.Fatalf("checkpoint set: %d\n%s%s", code, out, errOut)
	}
	p = e.Start()
	e.WaitFor("shop.t", 2, 30*time.Second)
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (3)")
	e.WaitFor("shop.t", 3, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	envs := e.Read("shop.t")
	if len(envs) != 3 {
		t.Fatalf("the stream holds %d messages after the recovery, want 3 (ids 1, 2, 3 once)", len(envs))
	}
	for i, env := range envs {
		if env.Source.History != first.Source.History {
			t.Errorf("message %d has history %q, want the stream's %q", i, env.Source.History, first.Source.History)
		}
	}
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
}

// TestCheckpointVanishesWhileRunning: redis restarted without persistence
// under a running producer loses the checkpoint key; when the producer
// next reads it (a new pass after a broker outage) it writes back the last
// checkpoint it saved instead of failing, and delivers every row.
func TestCheckpointVanishesWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := testenv.StartRedis(t)
	e.Set("Storage.DaoName", "redis")
	e.Set("Redis.Host", r.Host)
	e.Set("Redis.Port", strconv.Itoa(r.Port))
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (1)")
	e.WaitFor("shop.t", 1, 30*time.Second)
	r.Kill(t) // no persistence: the key is gone
	r.Start(t)
	// A broker outage makes the producer start a new pass, which reads the
	// (now missing) checkpoint before any new save could write it.
	e.StopBroker()
	for i := 2; i <= 20; i++ {
		e.DB.Exec(t, "INSERT INTO shop.t VALUES ("+strconv.Itoa(i)+")")
	}
	e2e.WaitLog(t, p, "vanished")
	e.StartBroker()
	e.WaitDistinct("shop.t", 20, time.Minute)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if !strings.Contains(p.Output(), "vanished") {
		t.Errorf("the producer did not report the vanished checkpoint:\n%s", p.Output())
	}
	v, err := r.Client(t).Get(context.Background(), "key").Result()
	if err != nil || !strings.Contains(v, "mysql-bin.") {
		t.Fatalf("checkpoint in redis after the restart: %q, %v", v, err)
	}
}
