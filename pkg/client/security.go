package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/dbsync/dbsync/pkg/mq"
)

// TLS secures the consumer's connection to NATS. It is on when CA or Cert
// is set, Config is set, or Host is a tls:// URL: the server's certificate
// must then be signed by CA (default the system's authorities) and name
// ServerName (default the host connected to).
type TLS struct {
	// CA is a PEM file of the certificate authorities to trust.
	CA string
	// Cert and Key are the client certificate and its key (PEM files), for
	// servers that check clients.
	Cert, Key string
	// ServerName is the name the server's certificate must carry.
	ServerName string
	// Config, when set, is used as it is (the fields above are then
	// ignored).
	Config *tls.Config
}

// ErrUnauthorized is matched (errors.Is) by the error of NewClient when the
// NATS server refused the credentials; retrying with the same ones cannot
// succeed. The error never shows the password, token or seed.
var ErrUnauthorized = mq.ErrUnauthorized

// auth is the mq form of c's credentials.
func (c Config) auth() mq.NATSAuth {
	return mq.NATSAuth{User: c.User, Password: c.Password, Token: c.Token, NKeySeedFile: c.NKeySeedFile, CredsFile: c.CredsFile}
}

// tlsConfig builds the client TLS configuration for url, nil when TLS is
// off. A file that cannot be loaded is an error naming the field.
func (c Config) tlsConfig(rawURL string) (*tls.Config, error) {
	t := c.TLS
	if t.Config != nil {
		return t.Config, nil
	}
	u, err := url.Parse(rawURL)
	secure := err == nil && strings.EqualFold(u.Scheme, "tls")
	if t.CA == "" && t.Cert == "" && !secure {
		return nil, nil
	}
	// No default ServerName: nats.go checks each server it connects to (a
	// server list, a cluster's discovered servers) against its own host.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("client.Config.TLS.CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client.Config.TLS.CA %q holds no PEM certificate", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("client.Config.TLS.Cert/Key (%s, %s): %w", t.Cert, t.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// securityOptions are the nats options of c's credentials and TLS for the
// server at url. It fails, naming the field but no secret, when they
// cannot be used.
func (c Config) securityOptions(rawURL string) ([]nats.Option, error) {
	tlsConfig, err := c.tlsConfig(rawURL)
	if err != nil {
		return nil, err
	}
	opts, err := mq.SecurityOptions(c.auth(), tlsConfig)
	if err != nil {
		return nil, fmt.Errorf("client.Config: %w", err)
	}
	return opts, nil
}

// connectFix is what to check when a connection failed with err: the
// credentials when the server refused them, else the address.
func connectFix(err error) string {
	if errors.Is(mq.AuthError(err), mq.ErrUnauthorized) {
		return "the NATS server refused the credentials: check client.Config.User/Password, Token, NKeySeedFile or CredsFile"
	}
	return "check Config.Host/Port"
}
