package wiring

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestClientTLSModes: against a server whose certificate names 127.0.0.1
// and localhost, signed by one test CA: verify_identity needs the CA and the
// name, verify_ca only the CA, required neither; another CA is refused.
func TestClientTLSModes(t *testing.T) {
	pki, other := testenv.NewPKI(t), testenv.NewPKI(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", pki.ServerTLS(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for _, tc := range []struct {
		mode, ca, host, serverName string
		ok                         bool
	}{
		{config.TLSVerifyIdentity, pki.CA, "127.0.0.1", "", true},
		{config.TLSVerifyIdentity, pki.CA, "127.0.0.1", "db.example", false}, // the certificate does not name it
		{config.TLSVerifyIdentity, other.CA, "127.0.0.1", "", false},
		{config.TLSVerifyCA, pki.CA, "127.0.0.1", "db.example", true},
		{config.TLSVerifyCA, other.CA, "127.0.0.1", "", false},
		{config.TLSRequired, "", "127.0.0.1", "", true},
		{config.TLSPreferred, "", "127.0.0.1", "", true},
		{config.TLSRequired, other.CA, "127.0.0.1", "", false}, // a CA makes it verify_ca
	} {
		cfg, err := clientTLS("X.TLS", config.TLS{Mode: tc.mode, CA: tc.ca, ServerName: tc.serverName}, tc.mode, tc.host)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", net.JoinHostPort(tc.host, port), cfg)
		if err == nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("mode %s, CA %s, name %q: handshake error %v, want ok=%v", tc.mode, tc.ca, tc.serverName, err, tc.ok)
		}
	}
	if cfg, err := clientTLS("X.TLS", config.TLS{}, config.TLSDisabled, "h"); cfg != nil || err != nil {
		t.Errorf("disabled: %v, %v", cfg, err)
	}
	if _, err := clientTLS("X.TLS", config.TLS{CA: pki.ServerKey}, config.TLSVerifyCA, "h"); err == nil || !strings.Contains(err.Error(), "X.TLS.CA") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
}
