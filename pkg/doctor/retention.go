package doctor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/failure"
)

// shortRetention is the binlog retention below which a producer outage of
// an ordinary length (a weekend) may lose changes.
const shortRetention = 24 * time.Hour

// retention returns the server's binlog expiry (0: never) and how it was
// found.
func retention(ctx context.Context, src *binlog.Source) (time.Duration, string, error) {
	if auto, err := src.Variable(ctx, "binlog_expire_logs_auto_purge"); err != nil {
		return 0, "", err
	} else if strings.EqualFold(auto, "OFF") {
		return 0, "binlog_expire_logs_auto_purge=OFF", nil
	}
	secs, err := src.Variable(ctx, "binlog_expire_logs_seconds")
	if err != nil {
		return 0, "", err
	}
	if n, _ := strconv.ParseUint(secs, 10, 64); n > 0 {
		return time.Duration(n) * time.Second, "binlog_expire_logs_seconds=" + secs, nil
	}
	days, err := src.Variable(ctx, "expire_logs_days")
	if err != nil {
		return 0, "", err
	}
	if d, _ := strconv.ParseFloat(days, 64); d > 0 {
		return time.Duration(math.Round(d * 86400 * float64(time.Second))), "expire_logs_days=" + days, nil
	}
	return 0, "binlog_expire_logs_seconds=0, expire_logs_days=0", nil
}

// checkRetention relates binlog expiry to the checkpoint.
func checkRetention(ctx context.Context, s server) Finding {
	src, checkpoint := s.src, s.checkpoint
	const raise = "SET GLOBAL binlog_expire_logs_seconds=604800; and the same in the server's config file (7 days; longer than any producer outage)"
	ret, how, err := retention(ctx, src)
	if err != nil {
		return Finding{Check: CheckRetention, Status: WARN, Detail: fmt.Sprintf("cannot read the binlog expiry: %v", err),
			Fix: "make sure the configured user can run SHOW GLOBAL VARIABLES"}
	}
	files, err := src.BinaryLogs(ctx)
	if err != nil {
		return Finding{Check: CheckRetention, Status: WARN, Detail: fmt.Sprintf("cannot list the binary logs: %v", err),
			Fix: fmt.Sprintf("GRANT REPLICATION CLIENT ON *.* TO %s", account(ctx, src))}
	}
	retText := "binlogs never expire (" + how + ")"
	if ret > 0 {
		retText = fmt.Sprintf("binlogs expire after %s (%s)", ret, how)
	}
	oldest := "none"
	if len(files) > 0 {
		oldest = files[0].Name
	}
	if checkpoint == nil {
		detail := fmt.Sprintf("%s; no checkpoint yet; %d binlog file(s), oldest %s", retText, len(files), oldest)
		if ret > 0 && ret < shortRetention {
			return Finding{Check: CheckRetention, Status: WARN,
				Detail: detail + fmt.Sprintf("; a producer stopped for longer than %s loses changes", ret), Fix: raise}
		}
		return Finding{Check: CheckRetention, Status: OK, Detail: detail}
	}
	res, err := src.ResumeAt(ctx, *checkpoint)
	if err != nil {
		fix := failure.Fix(err) // a history reset, a server lacking a function it needs, ...
		if fix == "" {
			fix = "re-sync the consumers from a snapshot, then reset the checkpoint (delete it to start at the current position)"
		}
		var pe *binlog.PurgedError
		if errors.As(err, &pe) {
			fix = fmt.Sprintf("re-sync the consumers from a snapshot, then delete the checkpoint (dbsync starts at the current position) "+
				"or set it to %s:4; then %s", pe.Oldest, raise)
		}
		return Finding{Check: CheckRetention, Status: FAIL, Detail: err.Error(), Fix: fix}
	}
	moved := ""
	if res.Moved {
		moved = fmt.Sprintf("; checkpoint %s is of the server with server_id %d, this one is %d: the producer goes on here by GTID at %s:%d",
			checkpoint, checkpoint.ServerID, src.ServerID(), res.Position.File, res.Position.Pos)
		checkpoint = &res.Position
	}
	var behind uint64
	nfiles := 0
	seen := false
	for _, f := range files {
		if f.Name == checkpoint.File {
			seen = true
			behind += f.Size - uint64(checkpoint.Pos)
			continue
		}
		if seen {
			behind += f.Size
			nfiles++
		}
	}
	detail := fmt.Sprintf("%s; checkpoint %s is %s behind the current end of the binlog (%d later file(s)); oldest binlog %s",
		retText, checkpoint, byteSize(behind), nfiles, oldest) + moved
	switch {
	case ret > 0 && checkpoint.File == files[0].Name && len(files) > 1:
		return Finding{Check: CheckRetention, Status: WARN,
			Detail: detail + ": the checkpoint is in the oldest binlog left, the next expiry purges it and the changes after the checkpoint with it " +
				"unless the producer catches up first",
			Fix: "start the producer now so it catches up; " + raise}
	case ret > 0 && ret < shortRetention:
		return Finding{Check: CheckRetention, Status: WARN,
			Detail: detail + fmt.Sprintf("; a producer stopped for longer than %s loses changes", ret), Fix: raise}
	}
	return Finding{Check: CheckRetention, Status: OK, Detail: detail}
}

func byteSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
