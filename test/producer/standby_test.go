package producer_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/faultproxy"
)

// TestStandbyTakesOver runs two producers for one source with the NATS
// checkpoint store and HA.Standby: one streams, the other stands by
// (/readyz says so). Under a write load on three tables the active one is
// killed with SIGKILL ten times; each time the standby takes over and the
// killed one comes back as the standby. Every committed row is stored
// once, in commit order, on JetStream.
func TestStandbyTakesOver(t *testing.T) {
	t.Parallel()
	e := standbyEnv(t, 64)
	envs := []*e2e.Env{e, e.Clone(t)}
	procs := make([]*e2e.Proc, 2)
	procs[0] = envs[0].Start()
	e2e.WaitLog(t, procs[0], "binlog stream started")
	procs[1] = envs[1].Start()
	e2e.WaitLog(t, procs[1], "standby: another replica holds the checkpoint lease")
	if body := get(t, envs[1].HTTPAddr, "/readyz"); !strings.HasPrefix(body, "standby: ") {
		t.Errorf("the standby's /readyz: %q", body)
	}
	if got := scrape(t, envs[1].HTTPAddr, "dbsync_ha_active"); got != 0 {
		t.Errorf("the standby's dbsync_ha_active = %v", got)
	}
	l := e2e.StartLoad(t, e.DB.DB(t), 3)
	active := 0
	var takeovers []time.Duration
	for k := 0; k < 10; k++ {
		time.Sleep(400 * time.Millisecond)
		killed := time.Now()
		procs[active].Kill()
		standby := 1 - active
		e2e.WaitLog(t, procs[standby], "binlog stream started")
		takeovers = append(takeovers, time.Since(killed))
		procs[active] = envs[active].Start()
		e2e.WaitLog(t, procs[active], "standby: another replica holds the checkpoint lease")
		active = standby
	}
	committed := l.Finish()
	for i := range committed {
		e.WaitDistinct(fmt.Sprintf("wl.t%d", i), len(committed[i]), 2*time.Minute)
	}
	if got := scrape(t, envs[active].HTTPAddr, "dbsync_ha_takeovers_total"); got != 1 {
		t.Errorf("the active replica's dbsync_ha_takeovers_total = %v, want 1", got)
	}
	for _, p := range procs {
		if code := p.Stop(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, p.Output())
		}
	}
	total, dups := 0, 0
	for i := range committed {
		subject := fmt.Sprintf("wl.t%d", i)
		dups += checkDelivery(t, subject, committed[i], e.Read(subject))
		total += len(committed[i])
	}
	if dups != 0 {
		t.Errorf("JetStream stored %d duplicates across the takeovers", dups)
	}
	slices.Sort(takeovers)
	t.Logf("10 takeovers (kill -9 of the active, LeaseTTL 2s): median %s, max %s; %d rows committed, all stored once in order",
		takeovers[len(takeovers)/2].Round(time.Millisecond), takeovers[len(takeovers)-1].Round(time.Millisecond), total)
}

// standbyEnv is a JetStream environment whose producers keep the
// checkpoint in NATS and stand by (lease ttl 2s), publishing batches of at
// most batchRows, with the load's database wl.
func standbyEnv(t *testing.T, batchRows int) *e2e.Env {
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	e.Set("Storage.DaoName", "nats")
	e.Set("HA", map[string]any{"Standby": true, "LeaseTTL": "2s"})
	e.Set("Batch.MaxRows", batchRows)
	e.DB.Exec(t, "CREATE DATABASE wl")
	return e
}

// get returns the body of GET path on the operations listener at addr.
func get(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestCutOffLeaderIsFenced cuts the active producer off from NATS (a
// partition: connections open, no bytes) while the standby takes over,
// then lets it through again: the deposed leader publishes nothing the
// stream keeps and saves no checkpoint; it stops, naming the lease it
// lost, and every committed row is stored once, in order.
func TestCutOffLeaderIsFenced(t *testing.T) {
	t.Parallel()
	e := standbyEnv(t, 16)
	// The leader reaches NATS through a proxy; the standby directly.
	proxy := faultproxy.Start(t, strings.TrimPrefix(e.NATS.URL(), "nats://"))
	leaderEnv, standbyEnv := e, e.Clone(t)
	leaderEnv.Set("JetStream.URL", "nats://"+proxy.Addr())
	leader := leaderEnv.Start()
	e2e.WaitLog(t, leader, "binlog stream started")
	standby := standbyEnv.Start()
	e2e.WaitLog(t, standby, "standby: another replica holds the checkpoint lease")
	l := e2e.StartLoad(t, e.DB.DB(t), 1)
	time.Sleep(500 * time.Millisecond)

	proxy.Blackhole()
	cut := leader.Output()
	e2e.WaitLog(t, standby, "binlog stream started")
	time.Sleep(time.Second) // the new leader publishes meanwhile
	proxy.Pass()
	if code := leader.Wait(time.Minute); code != 1 {
		t.Fatalf("the deposed leader exited %d, want 1:\n%s", code, leader.Output())
	}
	after := strings.TrimPrefix(leader.Output(), cut)
	for _, line := range strings.Split(after, "\n") {
		if line != "" && !strings.Contains(line, "level=debug") {
			t.Logf("deposed leader: %s", line)
		}
	}
	if !strings.Contains(after, "lease") || !strings.Contains(after, "lost") {
		t.Errorf("the deposed leader does not say it lost the lease:\n%s", after)
	}
	if strings.Contains(after, "checkpoint saved") {
		t.Errorf("the deposed leader saved a checkpoint after the takeover:\n%s", after)
	}
	committed := l.Finish()
	e.WaitDistinct("wl.t0", len(committed[0]), time.Minute)
	if code := standby.Stop(); code != 0 {
		t.Fatalf("the new leader exited %d:\n%s", code, standby.Output())
	}
	if dups := checkDelivery(t, "wl.t0", committed[0], e.Read("wl.t0")); dups != 0 {
		t.Errorf("JetStream stored %d duplicates", dups)
	}
	t.Logf("%d rows committed across the partition and the takeover, each stored once in order", len(committed[0]))
}
