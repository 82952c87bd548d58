package producer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestProducerOverTLS: against a MariaDB that refuses unencrypted
// connections (require_secure_transport=ON), the producer with
// Mysql.TLS.Mode verify_identity and the test CA streams a row, the doctor
// reports the TLS version, and checkpoint commands work; with Mode
// "disabled" the producer does not start and says why and what to set.
func TestProducerOverTLS(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	e := e2e.NewEnvWith(t, producerBin, e2e.Stan, testenv.MariaDBOptions{TLS: pki, RequireSecureTransport: true})
	e.Set("Mysql.TLS", map[string]any{"Mode": "verify_identity", "CA": pki.CA})
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")

	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (1)")
	e.WaitFor("shop.t", 1, 30*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if !strings.Contains(p.Output(), `tls="TLS 1.`) || !strings.Contains(p.Output(), "encrypted=true") {
		t.Errorf("the producer's log does not say the source connection is encrypted:\n%s", p.Output())
	}
	if code, out, stderr := e.Command("doctor"); code != 0 || !strings.Contains(out, "source_tls") || !strings.Contains(out, "TLS 1.") {
		t.Errorf("doctor: exit %d:\n%s\n%s", code, out, stderr)
	}
	if code, out, stderr := e.Command("checkpoint", "reset"); code != 0 {
		t.Errorf("checkpoint reset over TLS: exit %d, out %q, stderr %s", code, out, stderr)
	}

	e.Set("Mysql.TLS", map[string]any{"Mode": "disabled"})
	p = e.Start()
	if code := p.Wait(60 * time.Second); code == 0 {
		t.Fatalf("the producer ran with Mysql.TLS.Mode disabled against a server requiring secure transport:\n%s", p.Output())
	}
	for _, want := range []string{"require_secure_transport", "Mysql.TLS.Mode"} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("the producer's error does not name %s:\n%s", want, p.Output())
		}
	}
}
