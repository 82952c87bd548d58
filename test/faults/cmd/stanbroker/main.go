// Command stanbroker runs a NATS Streaming server (cluster id
// "test-cluster", file store, no limits, fast client heartbeats as in
// test/testenv) as a separate process, for fault-injection tests that
// must kill -9, SIGSTOP or restart the broker. -http serves the server's
// monitoring endpoints (/streaming/channelsz) for reading channel state. It
// prints "stanbroker ready" on stdout once it serves clients, and shuts down
// cleanly on SIGTERM or SIGINT.
//
//	stanbroker -host 127.0.0.1 -port 14222 -http 18222 -dir /tmp/stan
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats-streaming-server/stores"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 4222, "client port")
	httpPort := flag.Int("http", 0, "monitoring port (0: none)")
	dir := flag.String("dir", "", "file store directory (required)")
	cluster := flag.String("cluster", "test-cluster", "cluster id")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "stanbroker: -dir is required (the file store directory)")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	sOpts := stand.GetDefaultOptions()
	sOpts.ID = *cluster
	sOpts.StoreType = stores.TypeFile
	sOpts.FilestoreDir = *dir
	sOpts.FileStoreOpts.DoSync = false
	sOpts.StoreLimits = stores.StoreLimits{} // zero: unlimited
	sOpts.ClientHBInterval = time.Second
	sOpts.ClientHBTimeout = time.Second
	sOpts.ClientHBFailCount = 3
	sOpts.EnableLogging = false
	sOpts.HandleSignals = false

	nOpts := stand.NewNATSOptions()
	nOpts.Host = *host
	nOpts.Port = *port
	nOpts.NoLog = true
	nOpts.NoSigs = true
	if *httpPort > 0 {
		nOpts.HTTPHost = *host
		nOpts.HTTPPort = *httpPort
	}
	srv, err := stand.RunServerWithOpts(sOpts, nOpts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stanbroker: run nats streaming on %s:%d (store %s): %v\n", *host, *port, *dir, err)
		os.Exit(1)
	}
	fmt.Printf("stanbroker ready on nats://%s:%d\n", *host, *port)
	<-sigs
	srv.Shutdown()
	fmt.Println("stanbroker stopped")
}
