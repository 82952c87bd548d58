package doctor

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/wiring"
)

// checkStore opens the configured checkpoint store and reads the
// checkpoint, which it returns when there is one. It creates nothing.
func checkStore(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (Finding, *position.Position) {
	where := wiring.DescribeStore(cfg)
	none := Finding{Check: CheckCheckpoint, Status: WARN,
		Detail: fmt.Sprintf("no checkpoint yet in %s: the producer will start at %s; earlier changes are not published", where, cfg.DescribeStartAt()),
		Fix:    "nothing for a first start; set Mysql.StartAt to \"oldest\" to start at the oldest binlog instead, or restore the checkpoint if one existed"}
	store, err := wiring.InspectStore(ctx, cfg, log)
	switch {
	case errors.Is(err, storage.ErrNoCheckpoint):
		return none, nil
	case errors.Is(err, storage.ErrHeld):
		return Finding{Check: CheckCheckpoint, Status: WARN, Detail: fmt.Sprintf("%s is locked: a producer is running (%v)", where, err),
			Fix: failure.Fix(err)}, nil
	case err != nil:
		return Finding{Check: CheckCheckpoint, Status: FAIL, Detail: err.Error(), Fix: failure.Fix(err)}, nil
	}
	defer store.Close()
	pos, err := store.Get(ctx)
	switch {
	case err == nil:
		return Finding{Check: CheckCheckpoint, Status: OK, Detail: fmt.Sprintf("checkpoint %s in %s", pos, where)}, &pos
	case errors.Is(err, storage.ErrNoCheckpoint):
		return none, nil
	case errors.Is(err, storage.ErrCorrupt):
		return Finding{Check: CheckCheckpoint, Status: FAIL, Detail: err.Error(),
			Fix: "restore the checkpoint from a backup, or set it explicitly; after re-syncing the consumers, deleting it starts at " + cfg.DescribeStartAt()}, nil
	}
	return Finding{Check: CheckCheckpoint, Status: FAIL, Detail: err.Error(), Fix: "make the checkpoint store reachable and readable"}, nil
}
