package producer_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestNATSCheckpointStore runs the producer with Storage.DaoName "nats":
// the checkpoint lives in a key-value bucket of the JetStream server the
// changes go to. It streams, a second producer on the same checkpoint is
// refused while the first holds its lease, the admin commands that write
// are refused too, the doctor reads the checkpoint, and a restart resumes
// with no change published twice.
func TestNATSCheckpointStore(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	e.Set("Storage.DaoName", "nats")
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (1), (2)")
	e.WaitFor("shop.t", 2, 30*time.Second)

	// A second producer on the same checkpoint.
	second := e.Clone(t)
	second.Set("HTTP", map[string]any{"Disabled": true})
	p2 := second.Start()
	if code := p2.Wait(time.Minute); code != 1 {
		t.Fatalf("a second producer on a held NATS checkpoint: exit %d:\n%s", code, p2.Output())
	}
	mustContain(t, p2.Output(), "holds the checkpoint lease", "dbsync producer")
	if code, _, stderr := e.Command("checkpoint", "reset"); code != 1 || !strings.Contains(stderr, "refused: a running producer holds the checkpoint store") {
		t.Errorf("checkpoint reset while running: exit %d, %s", code, stderr)
	}
	if code, out, stderr := e.Command("doctor"); !strings.Contains(out, "NATS key-value store") {
		t.Errorf("doctor (exit %d) does not report the NATS checkpoint:\n%s%s", code, out, stderr)
	}
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	code, out, stderr := e.Command("checkpoint", "show")
	if code != 0 || !strings.Contains(out, "mysql-bin.") {
		t.Fatalf("checkpoint show: exit %d\n%s%s", code, out, stderr)
	}
	p = e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (3)")
	e.WaitFor("shop.t", 3, 30*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if n := e.Count("shop.t"); n != 3 {
		t.Errorf("shop.t holds %d messages after a restart, want 3", n)
	}
}

// TestNATSClusterLosesANode runs the producer on a three-node NATS
// cluster, the stream and the checkpoint bucket at three replicas, under
// a write load; the node the producer first connected to is shut down
// midway. The producer carries on through the other nodes (it learned
// them from the first), saves checkpoints there, and every committed row
// is stored once, in order.
func TestNATSClusterLosesANode(t *testing.T) {
	t.Parallel()
	nodes := testenv.StartNATSCluster(t, 3)
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	e.NATS = nodes[1] // (the Env reads the stream through a node that stays)
	e.Set("JetStream.URL", nodes[0].URL())
	e.Set("JetStream.Replicas", 3)
	e.Set("Storage.DaoName", "nats")
	e.DB.Exec(t, "CREATE DATABASE wl")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	l := e2e.StartLoad(t, e.DB.DB(t), 2)
	time.Sleep(time.Second)
	nodes[0].Shutdown(t)
	saved := strings.Count(p.Output(), "checkpoint saved")
	time.Sleep(3 * time.Second)
	committed := l.Finish()
	for i := range committed {
		e.WaitDistinct(fmt.Sprintf("wl.t%d", i), len(committed[i]), 2*time.Minute)
	}
	if n := strings.Count(p.Output(), "checkpoint saved"); n <= saved {
		t.Errorf("no checkpoint saved after the node went away (%d before, %d after)", saved, n)
	}
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	nodes[0].Restart(t) // the whole cluster serves the reads
	total := 0
	for i := range committed {
		subject := fmt.Sprintf("wl.t%d", i)
		if dups := checkDelivery(t, subject, committed[i], e.Read(subject)); dups != 0 {
			t.Errorf("%s: %d duplicates stored", subject, dups)
		}
		total += len(committed[i])
	}
	t.Logf("three-node cluster, one node lost under load: %d rows committed, each stored once in order", total)
}
