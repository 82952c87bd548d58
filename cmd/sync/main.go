// Command sync keeps a Redis cache or a PostgreSQL mirror exactly equal to
// a set of MySQL/MariaDB tables, from the changes dbsync's producer
// publishes:
//
//	go run ./cmd/sync -config sync.json
//
// The configuration (docs/sync.md) names the tables, the broker, the
// source server (whose information_schema gives the tables' columns and
// keys) and the target. Each table's changes are written in batches, each
// batch atomically with the consumer's progress, so a crash of anything
// loses no change and writes none twice. Metrics and health are served on
// HTTP.Listen (/metrics, /livez, /readyz).
//
// Exit status: 0 after SIGINT/SIGTERM, 2 for a configuration problem, 1
// when the sync cannot start.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/internal/gcfloor"
	"github.com/dbsync/dbsync/pkg/syncer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// run syncs until ctx is done and returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("sync", flag.ContinueOnError)
	flags.SetOutput(stderr)
	path := flags.String("config", "sync.json", "the sync configuration file (docs/sync.md)")
	if err := flags.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	cfg, err := syncer.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "sync: %v\n", err)
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.AddHook(cfg.Secrets().Hook())
	if cfg.Log.Format == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	}
	level, err := logrus.ParseLevel(cfg.Log.Level)
	if err != nil {
		fmt.Fprintf(stderr, "sync: Log.Level: %v\n", err)
		return 2
	}
	log.SetLevel(level)
	if floor := gcfloor.Choose(os.Getenv, debug.SetMemoryLimit(-1), gcfloor.Default); floor > 0 {
		tuner := gcfloor.Start(floor, 100)
		defer tuner.Stop()
		log.WithField("heap_floor_mib", floor>>20).Debug("garbage collector tuned: the heap may grow towards the floor before a collection (set GOGC to turn this off)")
	}
	if err := syncer.Run(ctx, cfg, log); err != nil {
		log.WithError(err).Error("sync stopped")
		return 1
	}
	return 0
}
