// Package natsembed runs a NATS server with JetStream inside the process:
// the producer's default broker when none is configured, and the tests'
// broker.
package natsembed

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options for an embedded server.
type Options struct {
	// Host and Port to listen on; Port -1 picks a free port.
	Host string
	Port int
	// StoreDir holds JetStream's files; required.
	StoreDir string
	// Name identifies the server in logs; optional.
	Name string
	// MaxPayload is the largest message the server accepts, in bytes; 0
	// means NATS' default (1 MiB).
	MaxPayload int32
	// MaxStore bounds JetStream's file storage in bytes; 0 means NATS'
	// default (most of the disk).
	MaxStore int64
}

// Server is a running embedded NATS server.
type Server struct {
	srv  *server.Server
	opts Options
}

// Start runs a server and waits until it accepts connections. It fails,
// naming the address, when the port is taken or the store directory is
// unusable.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, fmt.Errorf("embedded NATS server: no JetStream store directory")
	}
	sopts := &server.Options{
		ServerName: opts.Name,
		Host:       opts.Host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: opts.MaxPayload,
	}
	if opts.MaxStore > 0 {
		sopts.JetStreamMaxStore = opts.MaxStore
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server on %s: %w", net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)), err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s did not start within 10s (port in use?)", net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)))
	}
	return &Server{srv: srv, opts: opts}, nil
}

// URL is the server's client URL, e.g. "nats://127.0.0.1:4222".
func (s *Server) URL() string { return s.srv.ClientURL() }

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}
