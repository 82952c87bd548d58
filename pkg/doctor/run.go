package doctor

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/wiring"
)

// Run runs every check for cfg and never panics or returns early: the
// checkpoint store (opened and read, never created), the source server
// (connecting with cfg.Mysql; a refused or unreachable connection is a FAIL
// finding, and the server checks are then skipped; the connection's TLS
// state and the server certificate's expiry are a finding of their own) and the broker (dialled,
// nothing created). log receives the components' own log entries; nil
// discards them.
func Run(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) Report {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	var r Report
	storeFinding, checkpoint := checkStore(ctx, cfg, log)

	src, err := wiring.ConnectSource(ctx, cfg, log)
	if err != nil {
		r.Findings = append(r.Findings, Finding{Check: CheckSource, Status: FAIL, Detail: err.Error(), Fix: failure.Fix(err)})
	} else {
		r.Findings = append(r.Findings, Finding{Check: CheckSource, Status: OK,
			Detail: fmt.Sprintf("connected to %s as %q: %s (%s)", cfg.MysqlAddr(), cfg.Mysql.Username, src.Version(), src.Flavor())})
		mode := cfg.Mysql.TLS.Mode
		if mode == "" {
			mode = config.DefaultMysqlTLSMode
		}
		r.Findings = append(r.Findings, judgeSourceTLS(src.TLS(), mode, time.Now()))
		r.Findings = append(r.Findings, SourceChecks(ctx, src, cfg.Mysql.ServerID, checkpoint)...)
		r.Findings = append(r.Findings, checkSnapshot(ctx, cfg, src))
		src.Close()
	}
	r.Findings = append(r.Findings, storeFinding, checkBroker(ctx, cfg))
	return r
}

// Preflight runs the source checks as the producer's start-up check: a FAIL
// is a permanent error listing each with its fix, a WARN is logged.
func Preflight(ctx context.Context, src *binlog.Source, ourServerID uint32, checkpoint *position.Position, log logrus.FieldLogger) error {
	report := Report{Findings: SourceChecks(ctx, src, ourServerID, checkpoint)}
	for _, f := range report.Findings {
		if f.Status == WARN {
			log.WithFields(logrus.Fields{"check": f.Check, "fix": f.Fix}).Warn("preflight: " + f.Detail)
		}
	}
	if err := report.Err(); err != nil {
		return failure.Permanent(fmt.Errorf("MySQL at %s: %w", src.Addr(), err))
	}
	return nil
}
