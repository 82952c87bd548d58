// Command producer streams every row change of a MySQL or MariaDB server to
// NATS Streaming, one JSON envelope per row on "<ProName><db>.<table>".
//
//	go run ./cmd/producer                  # reads ./config.json
//	go run ./cmd/producer -config PATH
//
// Exit status: 0 after a graceful stop (SIGTERM/SIGINT: the open transaction
// finished, every message acknowledged, checkpoint saved), 1 when the
// producer cannot start or stops on an error it cannot retry, 2 for a bad
// command line or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dbsync/dbsync/internal/logging"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/producer"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("producer", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "config.json", "path of the configuration file")
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
