package monitor

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// sample returns the value of an unlabelled metric as /metrics exposes it,
// and whether it is exposed at all.
func sample(t *testing.T, m *Monitor, name string) (float64, bool) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler(ServeOptions{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	sc := bufio.NewScanner(rec.Result().Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f, true
		}
	}
	return 0, false
}

// binaryLogs lists the binlog files the server still has.
func binaryLogs(t *testing.T, src *binlog.Source) map[string]bool {
	t.Helper()
	files, err := src.BinaryLogs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range files {
		names[f.Name] = true
	}
	return names
}

// TestBinlogRetentionAndCheckpointFileAge runs the monitor's poll against a
// real MariaDB: dbsync_binlog_retention_seconds follows the server's
// expiry settings, and dbsync_checkpoint_binlog_file_age_seconds never
// understates how long ago the server last wrote the checkpoint's binlog
// file (the file's mtime, which expiry judges it by) and overstates it by
// little; once it passes the retention, a rotation purges the file, and
// not before.
func TestBinlogRetentionAndCheckpointFileAge(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	log := logrus.New()
	log.SetOutput(testWriter{t})
	src, err := binlog.Connect(ctx, binlog.Config{Host: db.Host, Port: uint16(db.Port), User: db.User, Password: db.Password,
		ServerID: 1001, HeartbeatPeriod: time.Second, ReadTimeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)

	for _, c := range []struct {
		set  []string
		want time.Duration
	}{
		{[]string{"SET GLOBAL binlog_expire_logs_seconds = 0"}, 0},
		{[]string{"SET GLOBAL binlog_expire_logs_seconds = 3600"}, time.Hour},
		{[]string{"SET GLOBAL binlog_expire_logs_seconds = 0", "SET GLOBAL expire_logs_days = 2"}, 48 * time.Hour},
		{[]string{"SET GLOBAL expire_logs_days = 0"}, 0},
	} {
		db.Exec(t, c.set...)
		if got, err := BinlogRetention(ctx, src); err != nil || got != c.want {
			t.Errorf("after %q: retention %v, %v; want %v", c.set, got, err, c.want)
		}
	}

	m := New(time.Minute)
	if _, ok := sample(t, m, "dbsync_binlog_retention_seconds"); ok {
		t.Error("dbsync_binlog_retention_seconds exposed before the source was asked")
	}
	if _, ok := sample(t, m, "dbsync_checkpoint_binlog_file_age_seconds"); ok {
		t.Error("dbsync_checkpoint_binlog_file_age_seconds exposed with no checkpoint")
	}
	const retention = 4 * time.Second
	db.Exec(t, "SET GLOBAL binlog_expire_logs_seconds = "+strconv.Itoa(int(retention.Seconds())),
		"CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)", "INSERT INTO shop.t VALUES (1)")
	first, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A checkpoint in a file that was rotated before the monitor watched:
	// its age is unknown until a change is published.
	m.Checkpointed(position.Position{File: first.File, Pos: 4}, nil)
	db.Exec(t, "FLUSH BINARY LOGS")
	m.pollOnce(ctx, src, nil, log)
	if got, ok := sample(t, m, "dbsync_binlog_retention_seconds"); !ok || got != retention.Seconds() {
		t.Errorf("dbsync_binlog_retention_seconds = %v (exposed %v), want %v", got, ok, retention.Seconds())
	}
	if got, ok := sample(t, m, "dbsync_checkpoint_binlog_file_age_seconds"); ok {
		t.Errorf("dbsync_checkpoint_binlog_file_age_seconds = %v for a file rotated before the monitor watched, want no sample", got)
	}
	// The binlog time of a change published from it bounds it.
	m.Published(map[RowKey]int{{DB: "shop", Table: "t", Type: "insert"}: 1}, 1, time.Now().Add(-time.Hour), time.Millisecond)
	if got, ok := sample(t, m, "dbsync_checkpoint_binlog_file_age_seconds"); !ok || got < 3600 || got > 3660 {
		t.Errorf("dbsync_checkpoint_binlog_file_age_seconds = %v (exposed %v) after a change of an hour ago was published, want about 3600", got, ok)
	}

	// A checkpoint in the file being written: about the poll interval old.
	current, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.Checkpointed(current, nil)
	m.pollOnce(ctx, src, nil, log)
	if got, ok := sample(t, m, "dbsync_checkpoint_binlog_file_age_seconds"); !ok || got > 1 {
		t.Errorf("dbsync_checkpoint_binlog_file_age_seconds = %v (exposed %v) with the checkpoint in the file being written, want < 1", got, ok)
	}
	db.Exec(t, "INSERT INTO shop.t VALUES (2)", "FLUSH BINARY LOGS")
	rotated := time.Now()
	file := filepath.Join(db.DataDir, current.File)
	trueAge := func() float64 {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatalf("the checkpoint's binlog: %v", err)
		}
		return time.Since(fi.ModTime()).Seconds()
	}
	var lastWrite time.Time
	for {
		m.pollOnce(ctx, src, nil, log)
		got, ok := sample(t, m, "dbsync_checkpoint_binlog_file_age_seconds")
		truth := trueAge()
		switch {
		case !ok:
			t.Fatal("dbsync_checkpoint_binlog_file_age_seconds not exposed after the checkpoint's file was rotated")
		case got < truth-0.01:
			t.Fatalf("dbsync_checkpoint_binlog_file_age_seconds = %.3f, but the file was last written %.3f s ago", got, truth)
		case got > truth+1:
			t.Fatalf("dbsync_checkpoint_binlog_file_age_seconds = %.3f, the file was last written %.3f s ago: too far off", got, truth)
		}
		if got >= retention.Seconds()+1 {
			lastWrite = time.Now().Add(-time.Duration(truth * float64(time.Second)))
			break
		}
		if got < retention.Seconds()-1 {
			// Younger than the retention: a rotation keeps it.
			db.Exec(t, "FLUSH BINARY LOGS")
			if !binaryLogs(t, src)[current.File] {
				t.Fatalf("%s purged %.1f s after it was last written, retention %s", current.File, got, retention)
			}
		}
		if time.Since(rotated) > 30*time.Second {
			t.Fatalf("dbsync_checkpoint_binlog_file_age_seconds is %.1f 30 s after the rotation", got)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Older than the retention: the next rotation purges it (MariaDB
	// purges once the file is no longer needed for crash recovery, which
	// the binlog background thread records shortly after a rotation).
	deadline := time.Now().Add(20 * time.Second)
	for binaryLogs(t, src)[current.File] {
		if time.Now().After(deadline) {
			t.Fatalf("%s still there after rotations %.0f s after its last write, retention %s", current.File, time.Since(lastWrite).Seconds(), retention)
		}
		db.Exec(t, "FLUSH BINARY LOGS")
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s purged by a rotation %.1f s after its last write, retention %s", current.File, time.Since(lastWrite).Seconds(), retention)
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
