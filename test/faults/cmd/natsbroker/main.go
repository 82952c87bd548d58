// Command natsbroker runs a NATS server with JetStream (internal/natsembed)
// as a separate process, for fault-injection tests that must kill -9,
// SIGSTOP or restart the broker. It prints "natsbroker ready" on stdout once
// it accepts connections, and shuts down cleanly on SIGTERM or SIGINT.
//
//	natsbroker -host 127.0.0.1 -port 14222 -dir /tmp/js
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dbsync/dbsync/internal/natsembed"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 4222, "client port")
	dir := flag.String("dir", "", "JetStream store directory (required)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "natsbroker: -dir is required (the JetStream store directory)")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	srv, err := natsembed.Start(natsembed.Options{Host: *host, Port: *port, StoreDir: *dir, Name: "natsbroker"})
	if err != nil {
		fmt.Fprintf(os.Stderr, "natsbroker: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("natsbroker ready on %s\n", srv.URL())
	<-sigs
	srv.Shutdown()
	fmt.Println("natsbroker stopped")
}
