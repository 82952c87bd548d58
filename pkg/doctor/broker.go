package doctor

import (
	"context"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/wiring"
)

// checkBroker connects to the configured broker without creating anything.
func checkBroker(ctx context.Context, cfg *config.Config) Finding {
	probe, err := wiring.ProbeBroker(ctx, cfg)
	switch {
	case err != nil:
		return Finding{Check: CheckBroker, Status: FAIL, Detail: err.Error(), Fix: failure.Fix(err)}
	case probe.Warning != "":
		return Finding{Check: CheckBroker, Status: WARN, Detail: probe.Detail + ": " + probe.Warning, Fix: probe.Fix}
	}
	return Finding{Check: CheckBroker, Status: OK, Detail: probe.Detail}
}
