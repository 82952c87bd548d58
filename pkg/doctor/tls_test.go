package doctor

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/testenv"
)

// TestJudgeSourceTLS: an unencrypted connection is a WARN; an encrypted
// one names its version and cipher, OK while the server's certificate has
// more than 30 days left, WARN within 30 days, FAIL once expired.
func TestJudgeSourceTLS(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	state := func(notAfter time.Time) *tls.ConnectionState {
		return &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256,
			PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "db.example"}, NotAfter: notAfter}}}
	}
	for _, tc := range []struct {
		name        string
		st          *tls.ConnectionState
		mode        string
		want        Status
		detail, fix string
	}{
		{"disabled", nil, "disabled", WARN, `not encrypted (Mysql.TLS.Mode "disabled")`, "set Mysql.TLS.Mode to verify_identity"},
		{"preferred, no TLS", nil, "preferred", WARN, "not encrypted", "the server offers no TLS"},
		{"a year left", state(now.Add(365 * 24 * time.Hour)), "verify_identity", OK, `TLS 1.3, TLS_AES_128_GCM_SHA256 (Mysql.TLS.Mode "verify_identity"); the server's certificate expires on 2027-11-29T00:00:00Z`, ""},
		{"ten days left", state(now.Add(10 * 24 * time.Hour)), "required", WARN, "expires on 2026-12-09T00:00:00Z, in 10 days", "renew the server's certificate"},
		{"expired", state(now.Add(-time.Hour)), "required", FAIL, "(db.example) expired on 2026-11-28T23:00:00Z", "renew the server's certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, []Finding{judgeSourceTLS(tc.st, tc.mode, now)}, CheckSourceTLS, tc.want, tc.detail, tc.fix)
		})
	}
}

// TestRunSourceTLS: the doctor against a MariaDB with TLS, connecting with
// verify_identity, reports the TLS version and the server certificate's
// expiry (the test CA's certificates expire in 30 days: a WARN).
func TestRunSourceTLS(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{TLS: pki, RequireSecureTransport: true})
	m.CreateReplicationUser(t, "dbsync", "secret")
	e := &env{m: m, dir: t.TempDir()}
	e.cfg = map[string]any{
		"Mysql": map[string]any{"Host": m.Host, "Port": strconv.Itoa(m.Port), "Username": "dbsync", "Password": "secret", "ServerID": 1001,
			"TLS": map[string]any{"Mode": "verify_identity", "CA": pki.CA}},
		"Storage":   map[string]any{"DaoName": "bolt", "PosKey": "key"},
		"Bolt":      map[string]any{"File": "pos.db", "Bucket": "pos", "Timeout": "200ms"},
		"DataDir":   e.dir,
		"HTTP":      map[string]any{"Disabled": true},
		"MQName":    "jetstream",
		"JetStream": map[string]any{"Listen": "127.0.0.1:1"},
	}
	r := e.run(t)
	expect(t, r.Findings, CheckSource, OK, "connected to "+m.Addr(), "")
	expect(t, r.Findings, CheckSourceTLS, WARN, "the server's certificate (localhost) expires on "+pki.NotAfter.UTC().Format(time.RFC3339), "renew")
	f := find(t, r.Findings, CheckSourceTLS)
	if want := `(Mysql.TLS.Mode "verify_identity")`; !strings.Contains(f.Detail, "TLS 1.") || !strings.Contains(f.Detail, want) {
		t.Errorf("detail %q names no TLS version or not %s", f.Detail, want)
	}
	// The dump probe connects on its own, also with TLS (the server
	// refuses anything else).
	expect(t, r.Findings, CheckDump, OK, "streams its binlog", "")
}
