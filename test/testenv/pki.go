package testenv

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for tests: its CA certificate,
// a server certificate for 127.0.0.1 and localhost, and a client
// certificate (CN "dbsync"), each as PEM files in a temporary directory.
// Two PKIs do not trust each other.
type PKI struct {
	// CA is the CA certificate file.
	CA string
	// ServerCert and ServerKey are the server's certificate and key files.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are the client's certificate and key files.
	ClientCert, ClientKey string
	// NotAfter is when the server certificate expires.
	NotAfter time.Time

	pool *x509.CertPool
}

// NewPKI creates a PKI; it fails the test on any error.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := shortTempDir(t, "pki")
	p := &PKI{NotAfter: time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)}
	caKey, caCert, caDER := mustCert(t, nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "dbsync test CA"},
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
	})
	p.CA = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)

	serverKey, _, serverDER := mustCert(t, caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotAfter:    p.NotAfter,
	})
	p.ServerCert = writePEM(t, dir, "server.pem", "CERTIFICATE", serverDER)
	p.ServerKey = writePEM(t, dir, "server-key.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(serverKey))

	clientKey, _, clientDER := mustCert(t, caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "dbsync"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotAfter:    p.NotAfter,
	})
	p.ClientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", clientDER)
	p.ClientKey = writePEM(t, dir, "client-key.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(clientKey))
	return p
}

// ServerTLS is a server-side tls.Config presenting the server certificate;
// with verifyClients it also requires a client certificate of this CA.
func (p *PKI) ServerTLS(t testing.TB, verifyClients bool) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatalf("testenv: load the server certificate: %v", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if verifyClients {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, p.pool
	}
	return cfg
}

// ClientTLS is a client-side tls.Config that trusts this CA and presents
// the client certificate.
func (p *PKI) ClientTLS(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatalf("testenv: load the client certificate: %v", err)
	}
	return &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// mustCert creates a certificate from tmpl, self-signed when parent is nil.
func mustCert(t testing.TB, parentKey *rsa.PrivateKey, parent, tmpl *x509.Certificate) (*rsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("testenv: generate a key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testenv: serial number: %v", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("testenv: create a certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: parse a certificate: %v", err)
	}
	return key, cert, der
}

func writePEM(t testing.TB, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatalf("testenv: write %s: %v", path, err)
	}
	return path
}
