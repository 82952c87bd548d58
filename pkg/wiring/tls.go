package wiring

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
)

// clientTLS builds the tls.Config of a connection to host from a TLS
// section whose effective mode is mode: nil for "disabled"; "preferred"
// and "required" encrypt without checking the certificate (unless a CA is
// given: then as verify_ca, like the MySQL client); "verify_ca" checks
// that CA (or the system's) signed it; "verify_identity" also that it
// names ServerName (default host). A client certificate is presented when
// Cert and Key are set. An unreadable or invalid file is an error naming
// the setting (key is the section's path, e.g. "Mysql.TLS").
func clientTLS(key string, t config.TLS, mode, host string) (*tls.Config, error) {
	if mode == config.TLSDisabled || mode == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, tlsFileError(key+".CA", t.CA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, failure.WithFix(fmt.Errorf("%s.CA %q holds no PEM certificate", key, t.CA),
				"point "+key+".CA at the PEM file of the certificate authority that signed the server's certificate")
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, tlsFileError(key+".Cert", t.Cert+", "+t.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	switch {
	case mode == config.TLSVerifyIdentity:
	case mode == config.TLSVerifyCA || t.CA != "":
		cfg.InsecureSkipVerify = true // the chain is checked below, the name is not
		cfg.VerifyConnection = verifyChain(cfg.RootCAs)
	default: // preferred, required: encrypted, not authenticated
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// verifyChain checks that the server's certificate chains to roots (nil:
// the system's), whatever name it carries.
func verifyChain(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server presented no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fmt.Errorf("the server's certificate is not signed by the configured CA: %w", err)
		}
		return nil
	}
}

func tlsFileError(key, path string, err error) error {
	return failure.WithFix(fmt.Errorf("%s: cannot load %s: %w", key, path, err),
		"point "+key+" at a readable PEM file (the Secret volume mounted where the config says)")
}
