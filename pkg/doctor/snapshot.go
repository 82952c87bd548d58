package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
)

// CheckSnapshot is the check of what a snapshot needs.
const CheckSnapshot = "snapshot"

// maxListed bounds how many tables a finding names.
const maxListed = 10

// checkSnapshot looks for included tables a snapshot cannot chunk (no
// primary key, no unique key over NOT NULL columns). The grants a snapshot
// needs (SELECT, and REPLICATION CLIENT for its watermarks) are the grants
// check's.
func checkSnapshot(ctx context.Context, cfg *config.Config, src *binlog.Source) Finding {
	keyless, err := src.KeylessTables(ctx)
	if err != nil {
		return Finding{Check: CheckSnapshot, Status: WARN, Detail: fmt.Sprintf("cannot list the tables' keys: %v", err),
			Fix: "make sure the configured user has SELECT ON *.* (information_schema shows only the tables it may read)"}
	}
	if len(keyless) == 0 {
		return Finding{Check: CheckSnapshot, Status: OK, Detail: "every included table has a primary key or a unique key over NOT NULL columns: a snapshot reads it in chunks"}
	}
	names := make([]string, 0, min(len(keyless), maxListed))
	for _, t := range keyless[:min(len(keyless), maxListed)] {
		names = append(names, binlog.TablePattern(t[0], t[1]))
	}
	list := strings.Join(names, ", ")
	if len(keyless) > maxListed {
		list += fmt.Sprintf(" and %d more", len(keyless)-maxListed)
	}
	if cfg.Snapshot.Keyless == config.KeylessRefuse {
		return Finding{Check: CheckSnapshot, Status: WARN,
			Detail: fmt.Sprintf("%d included table(s) have no primary key and no unique key over NOT NULL columns: %s; a snapshot refuses them (Snapshot.Keyless refuse)", len(keyless), list),
			Fix:    "add a primary key to them, exclude them (Tables.Exclude), or set Snapshot.Keyless to \"read\""}
	}
	return Finding{Check: CheckSnapshot, Status: WARN,
		Detail: fmt.Sprintf("%d included table(s) have no primary key and no unique key over NOT NULL columns: %s; a snapshot reads each in one go, its rows held in memory at once", len(keyless), list),
		Fix:    "add a primary key to them (or exclude them with Tables.Exclude)"}
}
