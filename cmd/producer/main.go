// Command producer streams every row change of a MySQL or MariaDB server to
// a message queue (NATS JetStream or NATS Streaming), one JSON envelope per
// row on "<ProName><db>.<table>".
//
//	producer [-config PATH]                          stream (default ./config.json)
//	producer doctor [-config PATH]                   check the source, broker and checkpoint store
//	producer checkpoint show [-config PATH]          print the checkpoint
//	producer checkpoint set [-config PATH] FILE POS  set it (source must still have it)
//	producer checkpoint set [-config PATH] -gtid G   set it to just after transaction G
//	producer checkpoint reset [-config PATH]         move it to the current (Mysql.StartAt) position
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
	"strconv"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/internal/failpoint"
	"github.com/dbsync/dbsync/internal/logging"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/doctor"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/producer"
	"github.com/dbsync/dbsync/pkg/storage"
)

func main() {
	failpoint.Init() // test builds only (the failpoints build tag)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "stream"
	if len(args) > 0 && (args[0] == "checkpoint" || args[0] == "doctor") {
		cmd, args = args[0], args[1:]
	}
	sub := ""
	if cmd == "checkpoint" {
		if len(args) == 0 {
			fmt.Fprintln(stderr, "usage: producer checkpoint show|set|reset [-config PATH] ...")
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
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dbsync: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "checkpoint":
		return checkpointCommand(ctx, sub, flags.Args(), *gtid, cfg, stdout, stderr, log)
	case "doctor":
		return runDoctor(ctx, cfg, stdout, log)
	}
	return stream(ctx, cfg, log)
}

func stream(ctx context.Context, cfg *config.Config, log *logrus.Logger) int {
	p, err := producer.New(ctx, cfg, producer.Options{}, log)
	if err != nil {
		log.WithError(err).Error("cannot start")
		return 1
	}
	defer p.Close()
	if err := p.Run(ctx); err != nil {
		log.WithError(err).Error("stopped on error")
		return 1
	}
	return 0
}

func checkpointCommand(ctx context.Context, sub string, args []string, gtid string, cfg *config.Config, stdout, stderr io.Writer, log *logrus.Logger) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dbsync: checkpoint %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "show":
		pos, err := producer.ShowCheckpoint(ctx, cfg, log)
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
		pos, err := producer.SetCheckpoint(ctx, cfg, pos, gtid, log)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, "checkpoint set to "+pos.Describe())
		return 0
	case "reset":
		pos, err := producer.ResetCheckpoint(ctx, cfg, log)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, "checkpoint reset to "+pos.Describe())
		return 0
	}
	fmt.Fprintf(stderr, "dbsync: unknown checkpoint command %q: want show, set or reset\n", sub)
	return 2
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
