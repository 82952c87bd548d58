// Command producer streams every row change of a MySQL or MariaDB server to
// a message queue (NATS JetStream or NATS Streaming), one JSON envelope per
// row on "<ProName><db>.<table>".
//
//	producer [-config PATH]                          stream (default ./config.json)
//	producer doctor [-config PATH]                   check the source, broker and checkpoint store
//	producer checkpoint show [-config PATH]          print the checkpoint
//	producer checkpoint set [-config PATH] FILE POS  set it (a transaction boundary the source still has)
//	producer checkpoint set [-config PATH] -gtid G   set it to just after transaction G
//	producer checkpoint reset [-config PATH]         move it to the current (Mysql.StartAt) position
//	producer snapshot start [-config PATH] DB.TABLE ...  re-publish tables' rows (the running producer)
//	producer snapshot status|cancel [-config PATH]   the running producer's snapshot
//
// The checkpoint commands are refused while a producer holds the store.
//
// Exit status: 0 after a graceful stop (SIGTERM/SIGINT: the open transaction
// finished, every message acknowledged, checkpoint saved) or a successful
// command; 1 when the producer cannot start, stops on an error it cannot
// retry, or a command fails; 2 for a bad command line or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/internal/failpoint"
	"github.com/dbsync/dbsync/internal/gcfloor"
	"github.com/dbsync/dbsync/internal/logging"
	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/doctor"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/monitor"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/producer"
	"github.com/dbsync/dbsync/pkg/redact"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/wiring"
)

func main() {
	failpoint.Init() // test builds only (the failpoints build tag)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "stream"
	if len(args) > 0 && (args[0] == "checkpoint" || args[0] == "doctor" || args[0] == "snapshot") {
		cmd, args = args[0], args[1:]
	}
	sub := ""
	if cmd == "checkpoint" || cmd == "snapshot" {
		if len(args) == 0 {
			fmt.Fprintln(stderr, "usage: producer checkpoint show|set|reset [-config PATH] ...\n       producer snapshot start|status|cancel [-config PATH] [db.table ...]")
			return 2
		}
		sub, args = args[0], args[1:]
	}
	flags := flag.NewFlagSet("producer", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "config.json", "path of the configuration file")
	gtid := flags.String("gtid", "", "checkpoint set: the GTID of the last transaction already published")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "dbsync: invalid configuration: %v\n", err)
		return 2
	}
	// Nothing this process prints carries a secret: the passwords and
	// tokens of the config, and the credentials in any URL, are hidden in
	// log lines (before and after formatting) and in commands' output.
	secrets := redact.NewSecrets(cfg.Secrets()...)
	stdout, stderr = secrets.Writer(stdout), secrets.Writer(stderr)
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dbsync: %v\n", err)
		return 2
	}
	log.AddHook(secrets.Hook())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "checkpoint":
		return checkpointCommand(ctx, sub, flags.Args(), *gtid, cfg, stdout, stderr, log)
	case "doctor":
		return runDoctor(ctx, cfg, stdout, log)
	case "snapshot":
		return snapshotCommand(ctx, sub, flags.Args(), cfg, stdout, stderr)
	}
	return stream(ctx, cfg, secrets, log)
}

// stream runs the producer until a signal stops it.
func stream(ctx context.Context, cfg *config.Config, secrets *redact.Secrets, log *logrus.Logger) int {
	if plan := planGC(cfg, os.Getenv, debug.SetMemoryLimit(-1)); plan.Floor > 0 {
		base := 100
		if plan.Percent > 0 {
			base = plan.Percent
			debug.SetGCPercent(base)
		}
		tuner := gcfloor.Start(plan.Floor, base)
		defer tuner.Stop()
		log.WithFields(logrus.Fields{"heap_floor_mib": plan.Floor >> 20, "gogc": base, "gomemlimit": os.Getenv("GOMEMLIMIT")}).
			Info("garbage collector tuned: the heap may grow towards the floor before a collection (set GOGC to turn this off)")
	}
	parts, tookOver, err := openActive(ctx, cfg, secrets.Text, log)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped while standing by")
			return 0
		}
		logFailure(log, err, "cannot start")
		return 1
	}
	defer parts.Close()
	p, err := producer.New(ctx, producer.Components{
		Store:     parts.Store,
		Lease:     parts.Lease,
		OpenQueue: func(ctx context.Context) (mq.MessageQueue, error) { return wiring.OpenQueue(ctx, cfg, log) },
		Source:    producer.BinlogSource(parts.Source, parts.SourceConfig, log),
		Preflight: func(ctx context.Context, checkpoint *position.Position) error {
			return doctor.Preflight(ctx, parts.Source, cfg.Mysql.ServerID, checkpoint, log)
		},
	}, producerOptions(cfg, parts.SourceConfig.SourceName, secrets, tookOver), log)
	if err != nil {
		logFailure(log, err, "cannot start")
		return 1
	}
	defer p.Close()
	if err := p.Run(ctx); err != nil {
		logFailure(log, err, "stopped on error")
		return 1
	}
	return 0
}

// producerOptions are the producer's settings from cfg.
func producerOptions(cfg *config.Config, sourceName string, secrets *redact.Secrets, tookOver bool) producer.Options {
	opts := producer.Options{
		SourceName:        sourceName,
		Subject:           cfg.Subject,
		DeadLetterSubject: cfg.DeadLetter(),
		SkipUnpublishable: cfg.Tables.OnUnpublishable.Skip,
		StartAtOldest:     cfg.Mysql.StartAt == "oldest",
		Batch: producer.BatchOptions{
			MaxRows:       cfg.Batch.MaxRows,
			MaxBytes:      cfg.Batch.MaxBytes,
			MaxWait:       cfg.Batch.MaxWait.Duration(),
			FlushWhenIdle: cfg.Batch.FlushIdle(),
		},
		MemoryBudget: cfg.Memory.Budget,
		StallTimeout: cfg.HTTP.StallTimeout.Duration(),
		TookOver:     tookOver,
		Snapshot: producer.SnapshotOptions{
			Initial:       cfg.Snapshot.Mode == config.SnapshotInitial || cfg.Snapshot.Mode == config.SnapshotWhenNeeded,
			ChunkRows:     cfg.Snapshot.ChunkRows,
			Pause:         cfg.Snapshot.Pause.Duration(),
			RefuseKeyless: cfg.Snapshot.Keyless == config.KeylessRefuse,
			Include:       cfg.Tables.Match,
		},
	}
	if !cfg.HTTP.Disabled {
		opts.HTTPListen = cfg.HTTP.Listen
		opts.HTTP = monitor.ServeOptions{Pprof: cfg.HTTP.Pprof, Redact: secrets.Text}
	}
	return opts
}

// logFailure logs err with the fix it carries, if any.
func logFailure(log logrus.FieldLogger, err error, msg string) {
	entry := log.WithError(err)
	if fix := failure.Fix(err); fix != "" {
		entry = entry.WithField("fix", fix)
	}
	entry.Error(msg)
}

func checkpointCommand(ctx context.Context, sub string, args []string, gtid string, cfg *config.Config, stdout, stderr io.Writer, log *logrus.Logger) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dbsync: checkpoint %s: %v\n", sub, err)
		if fix := failure.Fix(err); fix != "" {
			fmt.Fprintf(stderr, "  fix: %s\n", fix)
		}
		return 1
	}
	switch sub {
	case "show":
		pos, err := showCheckpoint(ctx, cfg, log)
		if errors.Is(err, storage.ErrNoCheckpoint) {
			fmt.Fprintln(stdout, "no checkpoint: the next start begins at Mysql.StartAt ("+cfg.Mysql.StartAt+")")
			return 0
		}
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, pos.Describe())
		return 0
	case "set":
		var pos position.Position
		switch {
		case gtid != "" && len(args) == 0:
		case gtid == "" && len(args) == 2:
			n, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil {
				fmt.Fprintf(stderr, "dbsync: checkpoint set: position %q is not a number\n", args[1])
				return 2
			}
			pos = position.Position{File: args[0], Pos: uint32(n)}
			if err := pos.Validate(); err != nil {
				fmt.Fprintf(stderr, "dbsync: checkpoint set: %v\n", err)
				return 2
			}
		default:
			fmt.Fprintln(stderr, "usage: producer checkpoint set [-config PATH] FILE POS   or   producer checkpoint set [-config PATH] -gtid GTID")
			return 2
		}
		store, src, release, err := openAdmin(ctx, cfg, "cannot check the position against the source", log)
		if err != nil {
			return fail(err)
		}
		defer release()
		if pos, err = producer.SetCheckpoint(ctx, store, src, pos, gtid, log); err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, "checkpoint set to "+pos.Describe())
		return 0
	case "reset":
		store, src, release, err := openAdmin(ctx, cfg, "cannot read the server's position", log)
		if err != nil {
			return fail(err)
		}
		defer release()
		pos, err := producer.ResetCheckpoint(ctx, store, src, cfg.Mysql.StartAt == "oldest", log)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, "checkpoint reset to "+pos.Describe())
		return 0
	}
	fmt.Fprintf(stderr, "dbsync: unknown checkpoint command %q: want show, set or reset\n", sub)
	return 2
}

// showCheckpoint reads the stored checkpoint; refused while a producer
// holds a bolt store (its metrics show the checkpoint).
func showCheckpoint(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (position.Position, error) {
	store, err := wiring.OpenStore(ctx, cfg, log)
	if err != nil {
		return position.Position{}, refuseIfHeld(err)
	}
	defer store.Close()
	return store.Get(ctx)
}

// openAdmin opens and holds the checkpoint store for an admin command,
// refusing while a running producer holds it, and connects to the source
// (a failure there is reported as sourceFailure).
func openAdmin(ctx context.Context, cfg *config.Config, sourceFailure string, log logrus.FieldLogger) (storage.PositionStorager, *binlog.Source, func(), error) {
	store, err := wiring.OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, nil, refuseIfHeld(err)
	}
	lease, err := wiring.HoldStoreFor(ctx, store, "dbsync admin", cfg.HA.LeaseTTL.Duration())
	if err != nil {
		store.Close()
		return nil, nil, nil, refuseIfHeld(err)
	}
	src, err := wiring.ConnectSource(ctx, cfg, log)
	if err != nil {
		lease.Release()
		store.Close()
		return nil, nil, nil, fmt.Errorf("%s: %w", sourceFailure, err)
	}
	return store, src, func() { src.Close(); lease.Release(); store.Close() }, nil
}

func refuseIfHeld(err error) error {
	if errors.Is(err, storage.ErrHeld) {
		return failure.WithFix(fmt.Errorf("refused: a running producer holds the checkpoint store: %w", err),
			"stop the producer first (its current checkpoint is on /metrics as dbsync_checkpoint_*)")
	}
	return err
}

// runDoctor prints every preflight finding; it exits 1 when one FAILs.
func runDoctor(ctx context.Context, cfg *config.Config, stdout io.Writer, log *logrus.Logger) int {
	report := doctor.Run(ctx, cfg, log)
	report.Print(stdout)
	if report.Failed() {
		return 1
	}
	return 0
}
