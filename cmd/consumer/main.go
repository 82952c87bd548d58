// Command consumer prints the changes of the given tables as JSON lines (one
// envelope per line on stdout), for debugging a dbsync pipeline.
//
//	go run ./cmd/consumer -url nats://127.0.0.1:4222 -cluster test-cluster shop.orders shop.items
//	go run ./cmd/consumer -broker jetstream -url nats://127.0.0.1:4222 shop.orders
//
// It subscribes durably as -client (default "dbsync-consumer"), so a restart
// resumes where it stopped; -from new skips what the broker already holds
// for a new client.
//
// Authentication: -user with -password-file (or DBSYNC_NATS_PASSWORD),
// -token-file (or DBSYNC_NATS_TOKEN), -nkey (a seed file) or -creds (a
// credentials file). Secrets are never flag values: flags show in ps.
// TLS: -tls-ca (and -tls-cert/-tls-key for a client certificate), or a
// tls:// URL; the server's certificate must name its host (or
// -tls-server-name).
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

// run consumes until ctx is done, with the process' environment; it
// returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, os.LookupEnv, stdout, stderr)
}

// runEnv is run with the environment variables of lookup.
func runEnv(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("consumer", flag.ContinueOnError)
	flags.SetOutput(stderr)
	broker := flags.String("broker", "stan", `"stan" (NATS Streaming), "jetstream" or "kafka"`)
	url := flags.String("url", "nats://127.0.0.1:4222", "NATS server URL")
	kafkaBrokers := flags.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, host:port[,host:port...] (kafka only)")
	sasl := flags.String("sasl", "", `Kafka SASL mechanism with -user and its password: "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" (kafka only)`)
	cluster := flags.String("cluster", "test-cluster", "NATS Streaming cluster id (stan only)")
	clientID := flags.String("client", "dbsync-consumer", "client id (unique per running consumer; durable position key)")
	prefix := flags.String("prefix", "", `the producer's ProName (subject prefix; jetstream and kafka default "dbsync.")`)
	from := flags.String("from", "first", `where a new client starts: "first" stored message or "new" ones only`)
	user := flags.String("user", "", "NATS user (its password from -password-file or DBSYNC_NATS_PASSWORD; default DBSYNC_NATS_USER)")
	passwordFile := flags.String("password-file", "", "file holding the NATS user's password")
	tokenFile := flags.String("token-file", "", "file holding the NATS token (or DBSYNC_NATS_TOKEN)")
	nkey := flags.String("nkey", "", "file holding the NATS user's nkey seed")
	creds := flags.String("creds", "", "NATS credentials file (user JWT and seed)")
	tlsCA := flags.String("tls-ca", "", "PEM file of the CA that signed the NATS server's certificate (turns TLS on)")
	tlsCert := flags.String("tls-cert", "", "client certificate (PEM) for servers that check clients")
	tlsKey := flags.String("tls-key", "", "the client certificate's key (PEM)")
	tlsServerName := flags.String("tls-server-name", "", "name the server's certificate must carry (default the URL's host)")
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
	cfg := client.Config{Broker: *broker, ClusterID: *cluster, ClientID: *clientID, Host: *url, Prefix: *prefix, StartAt: start,
		User: *user, NKeySeedFile: *nkey, CredsFile: *creds, SASLMechanism: *sasl,
		TLS: client.TLS{CA: *tlsCA, Cert: *tlsCert, Key: *tlsKey, ServerName: *tlsServerName}}
	if cfg.Broker == client.BrokerKafka {
		cfg.Brokers = strings.Split(*kafkaBrokers, ",")
	}
	if cfg.User == "" {
		cfg.User, _ = lookup("DBSYNC_NATS_USER")
	}
	var err error
	if cfg.Password, err = secret("-password-file", *passwordFile, "DBSYNC_NATS_PASSWORD", lookup); err != nil {
		fmt.Fprintf(stderr, "consumer: %v\n", err)
		return 2
	}
	if cfg.Token, err = secret("-token-file", *tokenFile, "DBSYNC_NATS_TOKEN", lookup); err != nil {
		fmt.Fprintf(stderr, "consumer: %v\n", err)
		return 2
	}
	if cfg.Password != "" && cfg.User == "" {
		fmt.Fprintln(stderr, "consumer: a NATS password without -user (or DBSYNC_NATS_USER)")
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	cfg.Logger = log
	c, err := client.NewClient(cfg)
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

// maxSecret bounds what is read from a secret file.
const maxSecret = 64 << 10

// secret returns the secret in file (its trailing newline dropped) or in
// the environment variable env; both set is an error. Errors name the
// flag, the file or the variable, never the secret.
func secret(flagName, file, env string, lookup func(string) (string, bool)) (string, error) {
	fromEnv, inEnv := lookup(env)
	if file == "" {
		return fromEnv, nil
	}
	if inEnv && fromEnv != "" {
		return "", fmt.Errorf("%s and %s are both set; keep one", flagName, env)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", fmt.Errorf("%s: cannot read %q: %w", flagName, file, err)
	}
	if len(data) > maxSecret {
		return "", fmt.Errorf("%s: %q is larger than %d bytes; it must hold the secret alone", flagName, file, maxSecret)
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %q is empty", flagName, file)
	}
	return s, nil
}
