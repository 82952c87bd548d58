// Package natsembed runs a NATS server with JetStream inside the process:
// the producer's default broker when none is configured, and the tests'
// broker.
package natsembed

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
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
	// Auth, when it names users, a token or nkeys, is required of every
	// client.
	Auth Auth
	// TLS, when not nil, is the server's TLS configuration (its
	// certificate, and ClientCAs/ClientAuth to check clients'); clients
	// must then connect with TLS.
	TLS *tls.Config
	// Tune, when set, adjusts the server's options last (tests: operator
	// mode with a memory account resolver).
	Tune func(*server.Options)
}

// Auth is how the server authenticates clients: users with passwords, a
// token, or nkey users (at most one kind, as in a NATS server config).
type Auth struct {
	Users []User
	Token string
	NKeys []NKeyUser
}

// User is a user/password client and what it may do.
type User struct {
	Name, Password string
	// Permissions, when not nil, limits the user; nil allows everything.
	Permissions *Permissions
}

// NKeyUser is a client authenticated by its nkey (the public key, "U...").
type NKeyUser struct {
	PublicKey   string
	Permissions *Permissions
}

// Permissions lists the subjects a user may (Allow) or may not (Deny)
// publish and subscribe to; empty lists do not restrict.
type Permissions struct {
	PublishAllow, PublishDeny     []string
	SubscribeAllow, SubscribeDeny []string
}

func (p *Permissions) server() *server.Permissions {
	if p == nil {
		return nil
	}
	sp := &server.Permissions{}
	if len(p.PublishAllow)+len(p.PublishDeny) > 0 {
		sp.Publish = &server.SubjectPermission{Allow: p.PublishAllow, Deny: p.PublishDeny}
	}
	if len(p.SubscribeAllow)+len(p.SubscribeDeny) > 0 {
		sp.Subscribe = &server.SubjectPermission{Allow: p.SubscribeAllow, Deny: p.SubscribeDeny}
	}
	return sp
}

// Apply sets a's users, token or nkeys on the server options o.
func (a Auth) Apply(o *server.Options) {
	for _, u := range a.Users {
		o.Users = append(o.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: u.Permissions.server()})
	}
	for _, n := range a.NKeys {
		o.Nkeys = append(o.Nkeys, &server.NkeyUser{Nkey: n.PublicKey, Permissions: n.Permissions.server()})
	}
	if a.Token != "" {
		o.Authorization = a.Token
	}
}

// NKeyPublic returns the public key ("U...") of the user nkey seed held in
// seedFile. Its errors never quote the file's content.
func NKeyPublic(seedFile string) (string, error) {
	data, err := os.ReadFile(seedFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("cannot read %q: %w", seedFile, err)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return "", fmt.Errorf("%q holds no valid nkey seed", seedFile)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("%q holds no user nkey seed (one starting with SU)", seedFile)
	}
	return pub, nil
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
	opts.Auth.Apply(sopts)
	if opts.TLS != nil {
		sopts.TLS, sopts.TLSConfig, sopts.TLSTimeout = true, opts.TLS, 5
		sopts.TLSVerify = opts.TLS.ClientAuth == tls.RequireAndVerifyClientCert
	}
	if opts.Tune != nil {
		opts.Tune(sopts)
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
