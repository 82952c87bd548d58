// Command consumer prints the changes of the given tables as JSON lines (one
// envelope per line on stdout), for debugging a dbsync pipeline.
//
//	go run ./cmd/consumer -url nats://127.0.0.1:4222 -cluster test-cluster shop.orders shop.items
//	go run ./cmd/consumer -broker jetstream -url nats://127.0.0.1:4222 shop.orders
//
// It subscribes durably as -client (default "dbsync-consumer"), so a restart
// resumes where it stopped; -from new skips what the broker already holds
// for a new client.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run consumes until ctx is done; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("consumer", flag.ContinueOnError)
	flags.SetOutput(stderr)
	broker := flags.String("broker", "stan", `"stan" (NATS Streaming) or "jetstream"`)
	url := flags.String("url", "nats://127.0.0.1:4222", "NATS server URL")
	cluster := flags.String("cluster", "test-cluster", "NATS Streaming cluster id (stan only)")
	clientID := flags.String("client", "dbsync-consumer", "client id (unique per running consumer; durable position key)")
	prefix := flags.String("prefix", "", `the producer's ProName (subject prefix; jetstream default "dbsync.")`)
	from := flags.String("from", "first", `where a new client starts: "first" stored message or "new" ones only`)
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: consumer [flags] db.table [db.table ...]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() == 0 {
		flags.Usage()
		return 2
	}
	start := client.StartAtFirst
	switch *from {
	case "first":
	case "new":
		start = client.StartAtNew
	default:
		fmt.Fprintf(stderr, "consumer: -from %q: want first or new\n", *from)
		return 2
	}
	out := bufio.NewWriter(stdout)
	var mu sync.Mutex
	printLine := func(_ context.Context, _ *envelope.Envelope, raw []byte) error {
		mu.Lock()
		defer mu.Unlock()
		out.Write(raw)
		out.WriteByte('\n')
		return out.Flush()
	}
	var tables [][2]string
	for _, arg := range flags.Args() {
		db, table, ok := strings.Cut(arg, ".")
		if !ok || db == "" || table == "" {
			fmt.Fprintf(stderr, "consumer: %q is not db.table\n", arg)
			return 2
		}
		tables = append(tables, [2]string{db, table})
	}
	log := logrus.New()
	log.SetOutput(stderr)
	c, err := client.NewClient(client.Config{Broker: *broker, ClusterID: *cluster, ClientID: *clientID, Host: *url, Prefix: *prefix, StartAt: start, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "consumer: %v\n", err)
		return 1
	}
	defer c.Close()

	for _, t := range tables {
		if _, err := c.SubscribeEnvelope(t[0], t[1], printLine); err != nil {
			fmt.Fprintf(stderr, "consumer: %v\n", err)
			return 1
		}
	}
	<-ctx.Done()
	return 0
}
