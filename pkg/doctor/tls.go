package doctor

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/dbsync/dbsync/pkg/config"
)

// certExpiryWarning is how long before its expiry a server certificate is
// reported (WARN).
const certExpiryWarning = 30 * 24 * time.Hour

// judgeSourceTLS reports the encryption of the source connection, whose
// state is st (nil: not encrypted) under Mysql.TLS.Mode mode, at now: the
// TLS version and cipher (OK), or "not encrypted" (WARN: the mode allowed
// it); and the server certificate's expiry: WARN within 30 days, FAIL once
// expired (possible only in the modes that do not check the certificate).
func judgeSourceTLS(st *tls.ConnectionState, mode string, now time.Time) Finding {
	if st == nil {
		fix := "enable TLS on the server (ssl_cert, ssl_key) and set Mysql.TLS.Mode to verify_identity with Mysql.TLS.CA"
		if mode == config.TLSPreferred {
			fix = "the server offers no TLS: " + fix
		}
		return Finding{Check: CheckSourceTLS, Status: WARN,
			Detail: fmt.Sprintf("not encrypted (Mysql.TLS.Mode %q): the binlog's row data crosses the network in clear", mode),
			Fix:    fix}
	}
	detail := fmt.Sprintf("%s, %s (Mysql.TLS.Mode %q)", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), mode)
	if len(st.PeerCertificates) == 0 {
		return Finding{Check: CheckSourceTLS, Status: OK, Detail: detail}
	}
	cert := st.PeerCertificates[0]
	expiry := cert.NotAfter.UTC().Format(time.RFC3339)
	left := cert.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return Finding{Check: CheckSourceTLS, Status: FAIL,
			Detail: fmt.Sprintf("%s; the server's certificate (%s) expired on %s", detail, cert.Subject.CommonName, expiry),
			Fix:    "renew the server's certificate (ssl_cert) and reload it (MariaDB: FLUSH SSL; MySQL: ALTER INSTANCE RELOAD TLS)"}
	case left < certExpiryWarning:
		return Finding{Check: CheckSourceTLS, Status: WARN,
			Detail: fmt.Sprintf("%s; the server's certificate (%s) expires on %s, in %d days", detail, cert.Subject.CommonName, expiry, int(left.Hours()/24)),
			Fix:    "renew the server's certificate (ssl_cert) before then and reload it (MariaDB: FLUSH SSL; MySQL: ALTER INSTANCE RELOAD TLS)"}
	}
	return Finding{Check: CheckSourceTLS, Status: OK, Detail: fmt.Sprintf("%s; the server's certificate expires on %s", detail, expiry)}
}
