package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestLeaseLostStopsTheProducer: two producers on one Redis checkpoint.
// The second is refused while the first holds the lease. The first is
// frozen until its lease lapses, the second takes the lease and streams;
// when the first wakes up it publishes nothing more, writes no checkpoint,
// and stops saying why. The broker is NATS Streaming, which keeps every
// message it is sent (no de-duplication), so a publish by the first after
// the loss would show as a message too many.
func TestLeaseLostStopsTheProducer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := testenv.StartRedis(t)
	e.Set("Storage.DaoName", "redis")
	e.Set("Redis.Host", r.Host)
	e.Set("Redis.Port", strconv.Itoa(r.Port))
	// The first producer's binlog connection outlives its freeze, so it
	// wakes up with row 2 to publish rather than a timed-out stream.
	e.Set("Mysql.ReadTimeout", "90s")
	rc := r.Client(t)
	ctx := context.Background()
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")

	first := e.Start()
	e2e.WaitLog(t, first, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (1)")
	e.WaitFor("shop.t", 1, 30*time.Second)
	owner1, err := rc.Get(ctx, "key:lease").Result()
	if err != nil || !strings.HasPrefix(owner1, "dbsync producer@") || !strings.Contains(owner1, " #") {
		t.Fatalf("lease holder = %q, %v; want the first producer's id", owner1, err)
	}
	waitCheckpointOwner(t, rc, owner1)

	// A second producer (its own HTTP port and Stan client id) is refused
	// while the first holds the lease.
	e.Set("HTTP.Listen", "127.0.0.1:"+strconv.Itoa(testenv.FreePort(t)))
	e.Set("Stan.ClientID", "dbsync-test-2")
	refused := e.Start()
	if code := refused.Wait(30 * time.Second); code != 1 || !strings.Contains(refused.Output(), "held by a running producer") ||
		!strings.Contains(refused.Output(), owner1[strings.Index(owner1, " #"):]) {
		t.Fatalf("second producer while the first runs: exit %d, want 1 naming the holder:\n%s", code, refused.Output())
	}

	// The first freezes (a long GC pause, a stopped VM, a partition) until
	// its lease lapses; the second takes the lease and streams.
	first.Freeze()
	frozen := first.Output()
	deadline := time.Now().Add(40 * time.Second)
	for {
		n, err := rc.Exists(ctx, "key:lease").Result()
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			first.Thaw()
			t.Fatalf("the frozen producer's lease did not lapse within 40s (exists %d, %v)", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	second := e.Start()
	e2e.WaitLog(t, second, "binlog stream started")
	owner2, err := rc.Get(ctx, "key:lease").Result()
	if err != nil || owner2 == owner1 || !strings.HasPrefix(owner2, "dbsync producer@") {
		t.Fatalf("lease holder after the takeover = %q, %v; want the second producer's own id (the first was %q)", owner2, err, owner1)
	}
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (2)")
	e.WaitFor("shop.t", 2, 30*time.Second)
	waitCheckpointOwner(t, rc, owner2)

	// The first wakes up with row 2 in its binlog stream: it must not
	// publish it, nor save a checkpoint, and must stop.
	first.Thaw()
	if code := first.Wait(30 * time.Second); code != 1 {
		t.Fatalf("the first producer exited %d after losing its lease, want 1:\n%s", code, first.Output())
	}
	after := strings.TrimPrefix(first.Output(), frozen)
	for _, line := range strings.Split(after, "\n") {
		if !strings.Contains(line, "level=debug") {
			t.Logf("first producer after the thaw: %s", line)
		}
	}
	if !strings.Contains(after, `msg="lease lost to `+owner2+`: another producer took the checkpoint; stopping`) {
		t.Errorf("the first producer did not say it lost the lease to %q:\n%s", owner2, after)
	}
	if strings.Contains(after, "checkpoint saved") {
		t.Errorf("the first producer saved a checkpoint after it lost the lease:\n%s", after)
	}

	e.DB.Exec(t, "INSERT INTO shop.t VALUES (3)")
	e.WaitFor("shop.t", 3, 30*time.Second)
	time.Sleep(time.Second)
	if n := e.Count("shop.t"); n != 3 {
		t.Errorf("the broker holds %d messages of shop.t, want 3 (rows 1 by the first producer, 2 and 3 by the second, each once)", n)
	}
	for i, env := range e.Read("shop.t") {
		t.Logf("message %d: %s", i, env.ID)
	}
	waitCheckpointOwner(t, rc, owner2)
	if code := second.Stop(); code != 0 {
		t.Fatalf("the second producer exited %d:\n%s", code, second.Output())
	}
	if n, _ := rc.Exists(ctx, "key:lease").Result(); n != 0 {
		t.Errorf("the lease was not released at the second producer's graceful stop")
	}
}

// waitCheckpointOwner waits until the stored checkpoint was written by
// owner.
func waitCheckpointOwner(t *testing.T, rc *redis.Client, owner string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rec struct {
			File  string `json:"file"`
			Pos   uint32 `json:"pos"`
			Owner string `json:"owner"`
		}
		raw, err := rc.Get(context.Background(), "key").Bytes()
		if err == nil {
			err = json.Unmarshal(raw, &rec)
		}
		if err == nil && rec.Owner == owner {
			return
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("written by " + strconv.Quote(rec.Owner))
			}
			t.Fatalf("the checkpoint %s was not written by %q within 30s: %v", raw, owner, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
