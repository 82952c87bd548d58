package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/dbsync/dbsync/test/testenv"
)

// sourceServerID is the replica server id of the source-ceiling reader,
// distinct from the producer's (1001) and the server's (1).
const sourceServerID = 4242

// sourceEventBuffer is the read-ahead of go-mysql's event channel, the
// producer's default (pkg/binlog Config.EventBuffer).
const sourceEventBuffer = 128

// sourceResult is one measurement of the source ceiling.
type sourceResult struct {
	Run      int
	Workload string
	Rows     int
	Elapsed  time.Duration
}

// RowsPerSec is the measured rate.
func (r sourceResult) RowsPerSec() float64 { return perSecond(r.Rows, r.Elapsed) }

// measureSource reads w's stretch of the binlog with go-mysql alone (see
// readStretch), with no sink. The clock runs from connecting until the
// event ending at w.End was read.
func measureSource(ctx context.Context, db *testenv.MariaDB, w *workload) (sourceResult, error) {
	began := time.Now()
	done, err := readStretch(ctx, db, w)
	if err != nil {
		return sourceResult{}, err
	}
	return sourceResult{Workload: w.Name, Rows: w.Rows, Elapsed: done.Sub(began)}, nil
}

// readStretch reads w's stretch of the binlog with go-mysql alone,
// configured like pkg/binlog's reader (mariadb flavor, UTC timestamps,
// DATETIME values as time.Time, JSON as MySQL text, checksums verified),
// decoding every rows event and counting its rows, until the event ending
// at w.End. It returns when that event was read (before disconnecting),
// and fails when the stretch does not hold exactly w.Rows rows.
func readStretch(ctx context.Context, db *testenv.MariaDB, w *workload) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: sourceServerID,
		Flavor:   mysql.MariaDBFlavor,
		Host:     db.Host,
		Port:     uint16(db.Port),
		User:     db.User,
		Password: db.Password,
		Charset:  "utf8mb4",
		// No ReadTimeout: the producer keeps go-mysql's off too and lets
		// its connection fail a silent read (pkg/binlog idleConn, a
		// deadline moved every few seconds, not per packet).
		HeartbeatPeriod:         10 * time.Second,
		TimestampStringLocation: time.UTC,
		ParseTime:               true,
		RenderJSONAsMySQLText:   true,
		DisableRetrySync:        true,
		Logger:                  slog.New(slog.NewTextHandler(io.Discard, nil)),
		EventCacheCount:         sourceEventBuffer,
		VerifyChecksum:          true,
	})
	defer syncer.Close()

	streamer, err := syncer.StartSync(mysql.Position{Name: w.Start.File, Pos: w.Start.Pos})
	if err != nil {
		return time.Time{}, fmt.Errorf("source ceiling of %s: start binlog stream at %s on %s: %w", w.Name, w.Start, db.Addr(), err)
	}
	file, rows := w.Start.File, 0
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("source ceiling of %s: read binlog at %s after %d rows: %w", w.Name, file, rows, err)
		}
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			file = string(e.NextLogName)
		case *replication.RowsEvent:
			rows += len(e.Rows)
		}
		if file == w.End.File && ev.Header.LogPos >= w.End.Pos {
			break
		}
	}
	done := time.Now()
	if rows != w.Rows {
		return time.Time{}, fmt.Errorf("source ceiling of %s: binlog %s .. %s holds %d rows, want %d", w.Name, w.Start, w.End, rows, w.Rows)
	}
	return done, nil
}
