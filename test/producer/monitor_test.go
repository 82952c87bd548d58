package producer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/test/e2e"
)

// scrape returns the value of one Prometheus sample ("name" or
// `name{label="v",...}` exactly as exposed), or -1 when absent.
func scrape(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, sample+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[len(sample):]), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// eventually polls cond for up to 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMetricsLagAndReadiness: the metrics move when rows flow; while the
// broker is stopped the lag rises, readiness fails and the stall is
// reported; when it is back everything recovers.
func TestMetricsLagAndReadiness(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{e2e.Stan, e2e.JetStream} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			e := e2e.NewEnvBroker(t, producerBin, broker)
			e.Set("HTTP.StallTimeout", "4s")
			e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
			p := e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			addr := e.HTTPAddr
			if got := scrape(t, addr, "dbsync_source_connected"); got != 1 {
				t.Errorf("dbsync_source_connected = %v, want 1", got)
			}
			rows := `dbsync_rows_published_total{db="shop",table="t",type="insert"}`
			for i := 1; i <= 10; i++ {
				e.DB.Exec(t, "INSERT INTO shop.t VALUES ("+strconv.Itoa(i)+")")
			}
			eventually(t, "10 rows counted", func() bool { return scrape(t, addr, rows) == 10 })
			// A transaction's commit can follow its row in the next batch.
			eventually(t, "10 transactions counted", func() bool { return scrape(t, addr, "dbsync_transactions_published_total") >= 10 })
			if scrape(t, addr, "dbsync_checkpoint_binlog_position") <= 0 || scrape(t, addr, "dbsync_batch_rows_count") <= 0 ||
				scrape(t, addr, "dbsync_publish_duration_seconds_count") <= 0 {
				t.Error("checkpoint, batch or publish latency metrics did not move")
			}
			eventually(t, "ready", func() bool { code, _ := readyz(t, addr); return code == 200 })

			e.StopBroker()
			for i := 11; i <= 15; i++ {
				e.DB.Exec(t, "INSERT INTO shop.t VALUES ("+strconv.Itoa(i)+")")
			}
			eventually(t, "not ready while the broker is down", func() bool {
				code, body := readyz(t, addr)
				return code == 503 && strings.Contains(body, "broker not connected")
			})
			eventually(t, "lag in bytes", func() bool { return scrape(t, addr, "dbsync_replication_lag_bytes") > 0 })
			lag1 := scrape(t, addr, "dbsync_replication_lag_seconds")
			eventually(t, "lag in seconds rising", func() bool { return scrape(t, addr, "dbsync_replication_lag_seconds") > lag1+1 })
			eventually(t, "stall reported", func() bool { return scrape(t, addr, "dbsync_stalled") == 1 })
			if got := scrape(t, addr, "dbsync_broker_connected"); got != 0 {
				t.Errorf("dbsync_broker_connected = %v while the broker is down", got)
			}

			e.StartBroker()
			eventually(t, "ready again", func() bool { code, _ := readyz(t, addr); return code == 200 })
			eventually(t, "all 15 rows counted", func() bool { return scrape(t, addr, rows) == 15 })
			eventually(t, "caught up", func() bool {
				return scrape(t, addr, "dbsync_replication_lag_bytes") == 0 && scrape(t, addr, "dbsync_stalled") == 0
			})
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
		})
	}
}

// TestLogLinesCarryThePosition: with Log.Format json, every line the
// streaming pipeline writes (the reader, go-mysql through the slog bridge,
// batches, checkpoints, retries) names a binlog position.
func TestLogLinesCarryThePosition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Set("Log.Format", "json")
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (1)", "ALTER TABLE shop.t ADD COLUMN c INT", "FLUSH BINARY LOGS", "INSERT INTO shop.t VALUES (2, 2)")
	e.WaitFor("shop.t", 2, 30*time.Second)
	e.StopBroker() // a publish failure and a retry
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (3, 3)")
	e2e.WaitLog(t, p, "streaming failed")
	e.StartBroker()
	e.WaitFor("shop.t", 3, 30*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	streaming := false
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if entry["msg"] == "binlog stream started" {
			streaming = true
		}
		if !streaming || entry["component"] == "monitor" && entry["msg"] == "connected to source" {
			continue // start-up, before the pipeline runs
		}
		checked++
		if entry["position"] == nil && entry["checkpoint"] == nil {
			t.Errorf("pipeline log line without a binlog position: %s", line)
		}
	}
	if checked < 5 {
		t.Fatalf("only %d pipeline log lines checked", checked)
	}
}

// TestReadinessFailsAtOnce: a broker that refuses messages (a JetStream
// stream that is full, with discard-new) makes the publish fail; /readyz
// says so and dbsync_publish_errors_total moves at once, and /readyz stays
// failing while the broker keeps refusing even though it answers pings.
// A broker that goes away is reported within a monitor interval (2 s), not
// after nats' reconnect attempts.
func TestReadinessFailsAtOnce(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	addr := e.HTTPAddr
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (1)")
	e.WaitFor("shop.t", 1, 30*time.Second)
	eventually(t, "ready", func() bool { code, _ := readyz(t, addr); return code == 200 })

	// The stream takes two more messages, then refuses new ones.
	js, err := jetstream.New(e.NATS.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "DBSYNC")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs, cfg.Discard = int64(st.CachedInfo().State.Msgs)+2, jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	refused := time.Now()
	for i := 2; i <= 6; i++ {
		e.DB.Exec(t, "INSERT INTO shop.t VALUES ("+strconv.Itoa(i)+")")
	}
	eventually(t, "the refusal counted", func() bool { return scrape(t, addr, "dbsync_publish_errors_total") >= 1 })
	eventually(t, "not ready after the refusal", func() bool {
		code, body := readyz(t, addr)
		return code == 503 && strings.Contains(body, "last publish failed")
	})
	t.Logf("refusal reported on /metrics and /readyz within %s", time.Since(refused).Round(time.Millisecond))
	if d := time.Since(refused); d > 5*time.Second {
		t.Errorf("the refusal took %s to show", d)
	}
	// It stays not ready while the broker keeps refusing (it answers pings).
	for i := 0; i < 4; i++ {
		time.Sleep(time.Second)
		if code, body := readyz(t, addr); code != 503 || !strings.Contains(body, "last publish failed") {
			t.Fatalf("readyz %d %q while the stream refuses every message", code, body)
		}
	}
	cfg.MaxMsgs = -1
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("shop.t", 6, 60*time.Second)
	eventually(t, "ready again", func() bool { code, _ := readyz(t, addr); return code == 200 })

	// The broker goes away: reported within a monitor interval.
	e.StopBroker()
	gone := time.Now()
	eventually(t, "broker reported down", func() bool {
		code, body := readyz(t, addr)
		return code == 503 && strings.Contains(body, "broker not connected") && scrape(t, addr, "dbsync_broker_connected") == 0
	})
	t.Logf("broker outage reported within %s", time.Since(gone).Round(time.Millisecond))
	if d := time.Since(gone); d > 3500*time.Millisecond {
		t.Errorf("the outage took %s to show (monitor interval 2s)", d)
	}
	e.StartBroker()
	eventually(t, "ready after the broker is back", func() bool { code, _ := readyz(t, addr); return code == 200 })
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
}
