package sync_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/test/e2e"
)

// get fetches url; "" and the error text when it cannot be read.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// httpAddr is the sync's HTTP.Listen in its config file.
func (w *world) httpAddr(target string) string {
	data, err := os.ReadFile(w.configs[target])
	if err != nil {
		w.t.Fatal(err)
	}
	var cfg struct{ HTTP struct{ Listen string } }
	if err := json.Unmarshal(data, &cfg); err != nil {
		w.t.Fatal(err)
	}
	return "http://" + cfg.HTTP.Listen
}

// waitHTTP polls url until check accepts the status and body.
func waitHTTP(t *testing.T, url string, what string, check func(code int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := get(url)
		if check(code, body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s answered %d %q", what, url, code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSyncSchemaChangeAndHealth: the PostgreSQL sync serves /livez,
// /readyz and its metrics; a column added on the source stops the table's
// sync with a report in /readyz, the metrics and the log that gives the
// ALTER TABLE to run, and running it lets the waiting changes through,
// equal to MariaDB. The DSN's password appears in no output, also while
// PostgreSQL is down.
func TestSyncSchemaChangeAndHealth(t *testing.T) {
	t.Parallel()
	w := newWorld(t, e2e.JetStream)
	const pgPassword = "pg-secret-pw-71"
	w.configs["postgres"] = w.writeSyncConfigWith("postgres", func(cfg map[string]any) {
		// Trust authentication ignores the password; it is there to be hidden.
		dsn := strings.Replace(w.pg.DSN("mirror"), "://"+w.pg.User+"@", "://"+w.pg.User+":"+pgPassword+"@", 1)
		if !strings.Contains(dsn, pgPassword) {
			t.Fatalf("no password in %s", dsn)
		}
		cfg["Postgres"] = map[string]any{"DSN": dsn}
	})
	w.startProducer()
	w.startSync("postgres")
	base := w.httpAddr("postgres")
	waitHTTP(t, base+"/livez", "livez", func(code int, _ string) bool { return code == 200 })
	waitHTTP(t, base+"/readyz", "readyz", func(code int, body string) bool { return code == 200 && strings.TrimSpace(body) == "ok" })

	w.e.DB.Exec(t, "INSERT INTO shop.orders VALUES (1, 'new', '10.00', NULL, NOW(3)), (2, 'paid', '20.50', 'x', NOW(3))")
	waitHTTP(t, base+"/metrics", "metrics", func(_ int, body string) bool {
		return strings.Contains(body, `dbsync_sync_changes_total{table="shop.orders",type="insert"} 2`)
	})

	w.e.DB.Exec(t, "ALTER TABLE shop.orders ADD COLUMN coupon VARCHAR(20) NULL", "INSERT INTO shop.orders VALUES (3, 'new', '1.00', NULL, NOW(3), 'WINTER')")
	body := waitHTTP(t, base+"/readyz", "readyz after the schema change", func(code int, body string) bool {
		return code == 503 && strings.Contains(body, "schema change on source table shop.orders")
	})
	fix := regexp.MustCompile(`ALTER TABLE [^;]+;?`).FindString(body)
	if !strings.Contains(body, "coupon") || fix == "" {
		t.Fatalf("readyz does not name the column and the ALTER TABLE to run: %s", body)
	}
	waitHTTP(t, base+"/metrics", "metrics", func(_ int, body string) bool {
		return strings.Contains(body, `dbsync_sync_schema_change{table="shop.orders"} 1`)
	})
	if log := w.syncLog("postgres"); !strings.Contains(log, "the source table changed") || !strings.Contains(log, "ALTER TABLE") {
		t.Fatalf("the log does not report the schema change with its fix:\n%s", tail(log, 3000))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := w.pg.Conn(t, "mirror")
	if _, err := conn.Exec(ctx, fix); err != nil {
		t.Fatalf("the fix %q: %v", fix, err)
	}
	waitHTTP(t, base+"/readyz", "readyz after the fix", func(code int, body string) bool { return code == 200 })
	names := [][2]string{{"shop", "orders"}}
	tables, err := sink.LoadTables(ctx, w.e.DB.DB(t), names)
	if err != nil {
		t.Fatal(err)
	}
	w.tables = tables
	w.waitEqualIn(60*time.Second, "postgres")

	// A change PostgreSQL can never take (a text holding a NUL
	// character): readyz and the metrics say so, and the table waits.
	w.e.DB.Exec(t, "INSERT INTO shop.orders VALUES (4, 'new', '1.00', CONCAT('a', CHAR(0), 'b'), NOW(3), NULL)")
	body = waitHTTP(t, base+"/readyz", "readyz at a change the target refuses", func(code int, body string) bool {
		return code == 503 && strings.Contains(body, "shop.orders: waits for a change the target cannot take")
	})
	waitHTTP(t, base+"/metrics", "metrics", func(_ int, body string) bool {
		return strings.Contains(body, `dbsync_sync_errors_total{kind="permanent",table="shop.orders"}`)
	})

	// PostgreSQL down: readyz says so, without the password.
	w.pg.Stop(t)
	body = waitHTTP(t, base+"/readyz", "readyz with PostgreSQL down", func(code int, _ string) bool { return code == 503 })
	w.pg.Start(t)
	for what, text := range map[string]string{"readyz": body, "log": w.syncLog("postgres")} {
		if strings.Contains(text, pgPassword) {
			t.Fatalf("the %s shows the DSN's password: %s", what, tail(text, 2000))
		}
	}
}
