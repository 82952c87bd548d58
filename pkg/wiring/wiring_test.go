package wiring_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/wiring"
	"github.com/dbsync/dbsync/test/testenv"
)

func newConfig(t *testing.T) *config.Config {
	cfg := &config.Config{DataDir: t.TempDir()}
	cfg.ApplyDefaults()
	cfg.Mysql.Host, cfg.Mysql.Port, cfg.Mysql.Username, cfg.Mysql.Password = "127.0.0.1", config.Port(strconv.Itoa(testenv.FreePort(t))), "dbsync", "s3cret-pw"
	cfg.MQName = "jetstream"
	cfg.ProName = mq.DefaultJetStreamSubjectPrefix
	return cfg
}

// TestInspectStoreCreatesNothing: the doctor's open of a bolt store that
// does not exist is "no checkpoint" and leaves no file behind; OpenStore
// creates it.
func TestInspectStoreCreatesNothing(t *testing.T) {
	cfg := newConfig(t)
	ctx := t.Context()
	if _, err := wiring.InspectStore(ctx, cfg, nil); !errors.Is(err, storage.ErrNoCheckpoint) {
		t.Fatalf("InspectStore of a missing file: %v, want storage.ErrNoCheckpoint", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*")); len(matches) != 0 {
		t.Fatalf("InspectStore created %v", matches)
	}
	store, err := wiring.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// A second open while the first holds the file: held, with a fix.
	cfg.Bolt.Timeout = config.Duration(100 * time.Millisecond)
	_, err = wiring.InspectStore(ctx, cfg, nil)
	if !errors.Is(err, storage.ErrHeld) || !strings.Contains(failure.Fix(err), "Bolt.File") {
		t.Fatalf("InspectStore of a held file: %v (fix %q), want storage.ErrHeld naming Bolt.File", err, failure.Fix(err))
	}
}

// TestOpenQueueEmbedded: with no JetStream.URL the queue runs its own NATS
// server, and closing the queue stops it.
func TestOpenQueueEmbedded(t *testing.T) {
	cfg := newConfig(t)
	cfg.JetStream.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	q, err := wiring.OpenQueue(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.(mq.HistoryReader); !ok {
		t.Error("the embedded queue hides the JetStream queue's HistoryReader")
	}
	if err := q.Publish(ctx, []mq.Message{{Subject: "dbsync.shop.t", ID: "f.000001:4:0", Data: []byte("{}")}}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", cfg.JetStream.Listen, time.Second); err == nil {
		c.Close()
		t.Fatalf("the embedded server still listens on %s after Close", cfg.JetStream.Listen)
	}
}

// TestFixesNameTheSettings: an unreachable source or broker is an error
// whose fix names the settings and environment variables to check, and
// no password or token reaches the error or the fix, however the URL is
// written.
func TestFixesNameTheSettings(t *testing.T) {
	cfg := newConfig(t)
	cfg.Mysql.ConnectTimeout = config.Duration(time.Second)
	ctx := t.Context()
	var errs []error
	_, err := wiring.ConnectSource(ctx, cfg, nil)
	errs = append(errs, err)
	if fix := failure.Fix(err); err == nil || !strings.Contains(fix, "Mysql.Host") || !strings.Contains(fix, "DBSYNC_MYSQL_PORT") {
		t.Errorf("unreachable source: %v, fix %q", err, fix)
	}
	dead := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	for _, url := range []string{
		"nats://alice:nats-pw@" + dead,
		"nats://alice:p#nats-pw@" + dead,
		"nats://nats-pw-token@" + dead,
		"nats://a:nats-pw@" + dead + ",nats://b:nats-pw2@" + dead,
	} {
		cfg.JetStream.URL = url
		_, err = wiring.OpenQueue(ctx, cfg, nil)
		errs = append(errs, err)
		if fix := failure.Fix(err); err == nil || !strings.Contains(fix, "JetStream.URL") {
			t.Errorf("unreachable broker %s: %v, fix %q", url, err, fix)
		}
		_, err = wiring.ProbeBroker(ctx, cfg)
		errs = append(errs, err)
		if fix := failure.Fix(err); err == nil || !strings.Contains(fix, "JetStream.URL") {
			t.Errorf("probe of an unreachable broker %s: %v, fix %q", url, err, fix)
		}
	}
	for _, err := range errs {
		for _, secret := range []string{"s3cret-pw", "nats-pw"} {
			if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(failure.Fix(err), secret)) {
				t.Errorf("%q leaks into %v", secret, err)
			}
		}
	}
}
