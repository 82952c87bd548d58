package producer_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestNoSecretInAnyOutput runs the producer with its own password, lets
// the source log other accounts' passwords (CREATE USER / ALTER USER / SET
// PASSWORD / GRANT ... IDENTIFIED BY reach the binlog as text), takes the
// broker away, runs the doctor and loads a config with credentials in a bad
// URL, and then looks for every secret in everything dbsync printed or
// served: the producer's log (at debug level), /readyz, the doctor's
// output and the config error.
func TestNoSecretInAnyOutput(t *testing.T) {
	t.Parallel()
	const ownPassword = "Pw-Own-4b7x"
	others := []string{"Pw-Other-1q", "Pw-Other-2w", "Pw-Other-3e", "Pw-Other-4r"}
	e := newEnv(t)
	e.DB.CreateReplicationUser(t, "leakcheck", ownPassword)
	e.Set("Mysql.Username", "leakcheck")
	e.Set("Mysql.Password", ownPassword)
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")

	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t,
		"CREATE USER 'other'@'%' IDENTIFIED BY '"+others[0]+"'",
		"ALTER USER 'other'@'%' IDENTIFIED BY '"+others[1]+"'",
		"SET PASSWORD FOR 'other'@'%' = PASSWORD('"+others[2]+"')",
		"GRANT SELECT ON shop.* TO 'other2'@'%' IDENTIFIED BY '"+others[3]+"'",
		"INSERT INTO shop.t VALUES (1)")
	e.WaitFor("shop.t", 1, 30*time.Second)
	for _, kind := range []string{`kind="CREATE USER"`, `kind="ALTER USER"`, `kind="SET PASSWORD"`, "kind=GRANT"} {
		e2e.WaitLog(t, p, kind)
	}

	// The snapshot commands, a good and a refused one.
	_, snapOut, snapErr := e.Command("snapshot", "start", "shop.t")
	e2e.WaitLog(t, p, "snapshot complete")
	_, statusOut, statusErr := e.Command("snapshot", "status")
	_, badOut, badErr := e.Command("snapshot", "start", "shop.nosuch")
	if !strings.Contains(badErr, "shop.nosuch") {
		t.Errorf("the refused snapshot does not name the table: %s", badErr)
	}

	// A broker outage: its errors reach the log and /readyz.
	e.StopBroker()
	readyz := waitNotReady(t, e.HTTPAddr)
	e.StartBroker()
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	_, doctorOut, doctorErr := e.Command("doctor")

	// A config whose broker URL carries credentials and is invalid.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"Mysql": {"Host": "h", "Port": 3306, "Username": "u", "Password": "`+ownPassword+`"},
		"Stan": {"Host": "http://alice:Pw-Url-5t@nats", "Port": 4222, "ClusterID": "c", "ClientID": "x"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, configErr := e.Command("-config", bad)
	if !strings.Contains(configErr, "invalid configuration") {
		t.Fatalf("the bad config was not refused: %s", configErr)
	}

	outputs := map[string]string{"producer log": p.Output(), "/readyz": readyz, "doctor": doctorOut + doctorErr, "config error": configErr,
		"snapshot commands": snapOut + snapErr + statusOut + statusErr + badOut + badErr}
	for name, out := range outputs {
		for _, secret := range append(others, ownPassword, "Pw-Url-5t") {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows %q:\n%s", name, secret, out)
			}
		}
	}
	if !strings.Contains(p.Output(), "IDENTIFIED BY '***'") {
		t.Errorf("the DDL text at debug level is missing or not redacted:\n%s", p.Output())
	}
}

// waitNotReady polls /readyz until it fails and returns its body.
func waitNotReady(t *testing.T, addr string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				return string(body)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("/readyz stayed ready while the broker was down")
	return ""
}

// TestNoNATSSecretInAnyOutput runs the producer against a NATS server that
// requires TLS and each kind of authentication (user/password from a file,
// token, nkey seed, creds file): it streams a row with the right
// credentials, then the doctor and the producer are run with wrong ones.
// With user/password the broker is also taken away under the running
// producer. No password, token, seed or creds file content may appear in
// the producer's log, /readyz or the doctor's output.
func TestNoNATSSecretInAnyOutput(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	for _, tc := range testenv.NATSAuthCases(t, pki, "dbsync.>") {
		t.Run(strings.ReplaceAll(tc.Kind, "/", "-"), func(t *testing.T) {
			t.Parallel()
			e := e2e.NewJetStreamEnv(t, producerBin, testenv.NATSOptions{Security: tc.Security})
			e.Set("JetStream.TLS", map[string]any{"Mode": "verify_identity", "CA": pki.CA})
			setNATSAuth(t, e, tc.Producer)
			e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")

			p := e.Start()
			e2e.WaitLog(t, p, "binlog stream started")
			e.DB.Exec(t, "INSERT INTO shop.t VALUES (1)")
			e.WaitFor("shop.t", 1, 30*time.Second)
			outputs := map[string]string{}
			if tc.Kind == "user/password" {
				e.StopBroker()
				outputs["/readyz"] = waitNotReady(t, e.HTTPAddr)
				e.StartBroker()
			}
			if code := p.Stop(); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			outputs["producer log"] = p.Output()

			setNATSAuth(t, e, tc.Wrong)
			_, doctorOut, doctorErr := e.Command("doctor")
			outputs["doctor with wrong credentials"] = doctorOut + doctorErr
			wrong := e.Start()
			if code := wrong.Wait(30 * time.Second); code != 1 {
				t.Fatalf("start with wrong credentials: exit %d, want 1:\n%s", code, wrong.Output())
			}
			outputs["producer log with wrong credentials"] = wrong.Output()
			if !strings.Contains(wrong.Output(), "JetStream.Auth") {
				t.Errorf("the refusal does not name the setting to fix:\n%s", wrong.Output())
			}
			for name, out := range outputs {
				for _, secret := range tc.Secrets {
					if strings.Contains(out, secret) {
						t.Errorf("%s shows a secret of the %s case (%.6s…):\n%s", name, tc.Kind, secret, out)
					}
				}
			}
		})
	}
}

// setNATSAuth puts c into the env's JetStream.Auth, the password and the
// token through files (as a Kubernetes Secret volume would hold them).
func setNATSAuth(t *testing.T, e *e2e.Env, c testenv.Credentials) {
	t.Helper()
	auth := map[string]any{}
	if c.User != "" {
		auth["User"] = c.User
	}
	if c.Password != "" {
		auth["PasswordFile"] = testenv.SecretFile(t, "nats-password", c.Password)
	}
	if c.Token != "" {
		auth["TokenFile"] = testenv.SecretFile(t, "nats-token", c.Token)
	}
	if c.NKeySeedFile != "" {
		auth["NKeySeedFile"] = c.NKeySeedFile
	}
	if c.CredsFile != "" {
		auth["CredsFile"] = c.CredsFile
	}
	e.Set("JetStream.Auth", auth)
}
