package monitor

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// VariableReader reads a global server variable ("" when the server has
// no such variable); a *binlog.Source is one. A Source that is also a
// VariableReader lets the monitor export the binlog retention.
type VariableReader interface {
	Variable(ctx context.Context, name string) (string, error)
}

// retentionRefresh is how often the monitor reads the source's binlog
// expiry settings again (they change only by SET GLOBAL or a restart).
const retentionRefresh = time.Minute

// BinlogRetention returns how long the server keeps a binlog file after it
// was last written before expiry purges it, 0 when binlogs never expire:
// binlog_expire_logs_auto_purge=OFF (MySQL), else binlog_expire_logs_seconds,
// else expire_logs_days, the settings and the order `producer doctor` reads
// them in. It fails only when the server cannot be asked.
func BinlogRetention(ctx context.Context, vars VariableReader) (time.Duration, error) {
	auto, err := vars.Variable(ctx, "binlog_expire_logs_auto_purge")
	if err != nil {
		return 0, fmt.Errorf("read binlog_expire_logs_auto_purge: %w", err)
	}
	if strings.EqualFold(auto, "OFF") {
		return 0, nil
	}
	secs, err := vars.Variable(ctx, "binlog_expire_logs_seconds")
	if err != nil {
		return 0, fmt.Errorf("read binlog_expire_logs_seconds: %w", err)
	}
	if n, _ := strconv.ParseUint(secs, 10, 64); n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	days, err := vars.Variable(ctx, "expire_logs_days")
	if err != nil {
		return 0, fmt.Errorf("read expire_logs_days: %w", err)
	}
	if d, _ := strconv.ParseFloat(days, 64); d > 0 {
		return time.Duration(math.Round(d * 86400 * float64(time.Second))), nil
	}
	return 0, nil
}

// binlogAges follows, poll by poll, which binlog file the source writes, to
// bound how long ago the server last wrote the checkpoint's file: binlog
// expiry purges a file once its last write is older than the retention,
// at the next rotation. The zero value is ready to use; the Monitor's lock
// guards it.
type binlogAges struct {
	// writtenAt is, per binlog file, the last poll that found the source
	// writing it: the file's last write is no earlier.
	writtenAt map[string]time.Time
	// retention is the source's binlog expiry, known once read.
	retention      time.Duration
	retentionKnown bool
	retentionRead  time.Time
}

// sawWriting records that the source was writing file at now, and forgets
// the files before the checkpoint's (it never goes back to them).
func (a *binlogAges) sawWriting(file, checkpointFile string, now time.Time) {
	if a.writtenAt == nil {
		a.writtenAt = map[string]time.Time{}
	}
	a.writtenAt[file] = now
	if checkpointFile == "" {
		return
	}
	keep := fileNumber(checkpointFile)
	for f := range a.writtenAt {
		if fileNumber(f) < keep {
			delete(a.writtenAt, f)
		}
	}
}

// lastWrite returns the latest time the server is known to have written
// checkpointFile, a lower bound of the file's last write: the last poll
// that found the source writing it, else the binlog time of the newest
// change the broker acknowledged (read from that file or, for the moment
// between a rotation and the checkpoint following it, the next one). ok is
// false when neither is known: the file was rotated before this process
// watched and nothing has been published since it started.
func (a *binlogAges) lastWrite(checkpointFile string, newestEvent time.Time) (t time.Time, ok bool) {
	if t, ok := a.writtenAt[checkpointFile]; ok {
		return t, true
	}
	if !newestEvent.IsZero() {
		return newestEvent, true
	}
	return time.Time{}, false
}

// checkpointBinlogAge is the dbsync_checkpoint_binlog_file_age_seconds
// sample: seconds since the server last wrote the checkpoint's binlog file,
// at most (ok false while unknown).
func (m *Monitor) checkpointBinlogAge() (float64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checkpoint.File == "" {
		return 0, false
	}
	t, ok := m.ages.lastWrite(m.checkpoint.File, m.lastEventTime)
	if !ok {
		return 0, false
	}
	return max(m.now().Sub(t).Seconds(), 0), true
}

// binlogRetention is the dbsync_binlog_retention_seconds sample (ok false
// until read).
func (m *Monitor) binlogRetention() (float64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ages.retention.Seconds(), m.ages.retentionKnown
}

// pollRetention reads the source's binlog expiry when it is due (first
// poll, then every retentionRefresh) and src can be asked.
func (m *Monitor) pollRetention(ctx context.Context, src Source) error {
	vars, ok := src.(VariableReader)
	if !ok {
		return nil
	}
	m.mu.Lock()
	due := !m.ages.retentionKnown || m.now().Sub(m.ages.retentionRead) >= retentionRefresh
	m.mu.Unlock()
	if !due {
		return nil
	}
	ret, err := BinlogRetention(ctx, vars)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ages.retention, m.ages.retentionKnown, m.ages.retentionRead = ret, true, m.now()
	return nil
}
