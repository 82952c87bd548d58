package wiring_test

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/wiring"
	"github.com/dbsync/dbsync/test/testenv"
)

const tlsTestPassword = "tls-Test-pw-81"

// sourceConfigFor is a config pointing at m as the user "dbsync" with TLS
// section tls.
func sourceConfigFor(t *testing.T, m *testenv.MariaDB, tls config.TLS) *config.Config {
	cfg := newConfig(t)
	cfg.Mysql.Port = config.Port(strconv.Itoa(m.Port))
	cfg.Mysql.Password = tlsTestPassword
	cfg.Mysql.TLS = tls
	cfg.Mysql.ConnectTimeout = config.Duration(10 * time.Second)
	cfg.Tables.Include = []string{"shop.*"}
	return cfg
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// streamOneInsert connects with cfg, starts the binlog stream at the
// current position, inserts a row into shop.t and waits for it.
func streamOneInsert(t *testing.T, m *testenv.MariaDB, cfg *config.Config) *binlog.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	src, err := wiring.ConnectSource(ctx, cfg, quiet())
	if err != nil {
		t.Fatalf("Mysql.TLS %+v: connect: %v (fix %q)", cfg.Mysql.TLS, err, failure.Fix(err))
	}
	t.Cleanup(src.Close)
	scfg, err := wiring.SourceConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, stop, done := make(chan binlog.Event, 64), make(chan struct{}), make(chan error, 1)
	go func() { done <- binlog.NewReader(scfg, src, quiet()).Run(ctx, start, stop, events) }()
	m.Exec(t, "INSERT INTO shop.t (v) VALUES ('over tls')")
	for got := false; !got; {
		select {
		case ev := <-events:
			for _, r := range ev.Rows {
				got = got || r.Table == "t" && strings.Contains(string(r.Data), "over tls")
			}
		case err := <-done:
			t.Fatalf("Mysql.TLS %+v: the reader stopped: %v (fix %q)", cfg.Mysql.TLS, err, failure.Fix(err))
		case <-ctx.Done():
			t.Fatalf("Mysql.TLS %+v: the insert did not arrive", cfg.Mysql.TLS)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return src
}

// refused connects with cfg and checks that it fails permanently with an
// error containing want and a fix containing fix, neither showing the
// password.
func refused(t *testing.T, cfg *config.Config, want, fix string) {
	t.Helper()
	src, err := wiring.ConnectSource(t.Context(), cfg, quiet())
	if err == nil {
		src.Close()
		t.Fatalf("Mysql.TLS %+v: connected, want a refusal", cfg.Mysql.TLS)
	}
	t.Logf("Mysql.TLS.Mode %q: %v\n  fix: %s", cfg.Mysql.TLS.Mode, err, failure.Fix(err))
	if !strings.Contains(err.Error(), want) || !strings.Contains(failure.Fix(err), fix) || !failure.IsPermanent(err) {
		t.Errorf("Mysql.TLS %+v: error %q (fix %q, permanent %v), want one containing %q with a fix containing %q, permanent",
			cfg.Mysql.TLS, err, failure.Fix(err), failure.IsPermanent(err), want, fix)
	}
	if strings.Contains(err.Error(), tlsTestPassword) || strings.Contains(failure.Fix(err), tlsTestPassword) {
		t.Errorf("the password leaks into %q", err)
	}
}

func prepareShop(t *testing.T, m *testenv.MariaDB) {
	m.CreateReplicationUser(t, "dbsync", tlsTestPassword)
	m.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))")
}

// TestSourceTLSRequired: against a MariaDB with TLS and
// require_secure_transport=ON, verify_identity with the test CA connects
// and streams (every connection encrypted, or the server would refuse it);
// "disabled" fails naming the server's requirement and Mysql.TLS.Mode; a
// certificate of another CA, or one that does not carry the expected name,
// is refused naming Mysql.TLS.CA.
func TestSourceTLSRequired(t *testing.T) {
	t.Parallel()
	pki, other := testenv.NewPKI(t), testenv.NewPKI(t)
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{TLS: pki, RequireSecureTransport: true})
	prepareShop(t, m)

	src := streamOneInsert(t, m, sourceConfigFor(t, m, config.TLS{Mode: config.TLSVerifyIdentity, CA: pki.CA}))
	if st := src.TLS(); st == nil || len(st.PeerCertificates) == 0 {
		t.Errorf("verify_identity: the admin connection reports no TLS state (%v)", st)
	}
	streamOneInsert(t, m, sourceConfigFor(t, m, config.TLS{Mode: config.TLSVerifyCA, CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}))
	streamOneInsert(t, m, sourceConfigFor(t, m, config.TLS{})) // preferred, the default: the server offers TLS

	refused(t, sourceConfigFor(t, m, config.TLS{Mode: config.TLSDisabled}), "require_secure_transport=ON", "Mysql.TLS.Mode to verify_identity")
	refused(t, sourceConfigFor(t, m, config.TLS{Mode: config.TLSVerifyIdentity, CA: other.CA}), "certificate", "Mysql.TLS.CA")
	refused(t, sourceConfigFor(t, m, config.TLS{Mode: config.TLSVerifyCA, CA: other.CA}), "certificate", "Mysql.TLS.CA")
	refused(t, sourceConfigFor(t, m, config.TLS{Mode: config.TLSVerifyIdentity, CA: pki.CA, ServerName: "db.example"}), "certificate", "Mysql.TLS.ServerName")
}

// TestSourceWithoutTLS: against a MariaDB without TLS, "preferred" (the
// default) connects and streams unencrypted, "required" and the verify
// modes are refused naming Mysql.TLS.Mode.
func TestSourceWithoutTLS(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	prepareShop(t, m)

	src := streamOneInsert(t, m, sourceConfigFor(t, m, config.TLS{}))
	if st := src.TLS(); st != nil {
		t.Errorf("preferred against a server without TLS: TLS state %v, want none", st)
	}
	streamOneInsert(t, m, sourceConfigFor(t, m, config.TLS{Mode: config.TLSDisabled}))

	// The fallback is said at info level, and the connection's log line
	// says it is unencrypted.
	log, hook := logtest.NewNullLogger()
	src, err := wiring.ConnectSource(t.Context(), sourceConfigFor(t, m, config.TLS{}), log)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	var fellBack, saidOff bool
	for _, e := range hook.AllEntries() {
		fellBack = fellBack || e.Level == logrus.InfoLevel && strings.Contains(e.Message, "offers no TLS: connecting unencrypted")
		saidOff = saidOff || e.Message == "connected to source" && e.Data["tls"] == "off"
		if line, _ := e.String(); strings.Contains(line, tlsTestPassword) {
			t.Errorf("the password leaks into the log: %s", line)
		}
	}
	if !fellBack || !saidOff {
		t.Errorf("preferred against a server without TLS: the log says fallback %v, tls=off %v", fellBack, saidOff)
	}

	refused(t, sourceConfigFor(t, m, config.TLS{Mode: config.TLSRequired}), `does not offer TLS, which Mysql.TLS.Mode "required" requires`, "Mysql.TLS.Mode")
	refused(t, sourceConfigFor(t, m, config.TLS{Mode: config.TLSVerifyIdentity, CA: pki.CA}), "does not offer TLS", "Mysql.TLS.Mode")
	// A CA is meant to be checked: with it, no mode (verify_identity then)
	// and preferred both refuse a server that offers no TLS instead of
	// falling back to plaintext.
	refused(t, sourceConfigFor(t, m, config.TLS{CA: pki.CA}), `does not offer TLS, which Mysql.TLS.Mode "verify_identity" requires`, "Mysql.TLS.Mode")
	refused(t, sourceConfigFor(t, m, config.TLS{Mode: config.TLSPreferred, CA: pki.CA}), "does not offer TLS", "Mysql.TLS.Mode")

	// An account that cannot log in with a password (unix_socket only):
	// the server answers 1698, a refused login like 1045.
	m.Exec(t, "CREATE USER 'sock'@'%' IDENTIFIED VIA unix_socket")
	cfg := sourceConfigFor(t, m, config.TLS{})
	cfg.Mysql.Username = "sock"
	refused(t, cfg, "1698", "cannot log in with a password")
}
