package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes content to a fresh file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretFiles: a secret comes from the file a *File setting (or its
// DBSYNC_*_FILE variable) names, without its trailing newline; a secret
// set twice, or a missing or empty file, is a problem naming the setting
// and the path, never the content.
func TestSecretFiles(t *testing.T) {
	pw := writeFile(t, "mysql-password", "from-a-volume\n")
	m := minimal()
	delete(section(m, "Mysql"), "Password")
	section(m, "Mysql")["PasswordFile"] = pw
	c, err := Parse(encode(t, m), "test.json", envMap(map[string]string{"DBSYNC_STAN_TOKEN_FILE": writeFile(t, "token", "tok-123")}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mysql.Password != "from-a-volume" || c.Stan.Auth.Token != "tok-123" {
		t.Fatalf("password %q, token %q", c.Mysql.Password, c.Stan.Auth.Token)
	}
	if got := c.Secrets(); len(got) != 2 || got[0] != "from-a-volume" || got[1] != "tok-123" {
		t.Fatalf("Secrets() = %q", got)
	}

	m = minimal() // Password "p" and a PasswordFile
	section(m, "Mysql")["PasswordFile"] = pw
	section(m, "Redis")["PasswordFile"] = "/no/such/file"
	section(m, "Storage")["DaoName"] = "redis"
	section(m, "Redis")["Host"], section(m, "Redis")["Port"] = "r", 6379
	section(m, "Stan")["Auth"] = map[string]any{"TokenFile": writeFile(t, "empty", "\n")}
	_, err = Parse(encode(t, m), "test.json", nil)
	for _, want := range []string{
		"Mysql.PasswordFile: is set, and so is Mysql.Password; keep one",
		`Redis.PasswordFile: cannot read "/no/such/file": no such file or directory`,
		"Stan.Auth.TokenFile: " + `"` + filepath.Join(filepath.Dir(section(m, "Stan")["Auth"].(map[string]any)["TokenFile"].(string)), "empty") + `" is empty`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestProblemsNeverEchoSecrets: a secret of the wrong type, or a URL with
// credentials that is invalid, is reported without its value.
func TestProblemsNeverEchoSecrets(t *testing.T) {
	m := minimal()
	section(m, "Mysql")["Password"] = 12345678
	section(m, "Stan")["Auth"] = map[string]any{"User": "u", "Password": []any{"s3cret-in-a-list"}}
	m["MQName"] = "stan"
	section(m, "Stan")["Host"] = "http://alice:url-s3cret@nats"
	_, err := Parse(encode(t, m), "test.json", nil)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, secret := range []string{"12345678", "s3cret-in-a-list", "url-s3cret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows %q:\n%v", secret, err)
		}
	}
	for _, want := range []string{"Mysql.Password: got a number, want a string", "Stan.Auth.Password: got an array, want a string", `"http://alice:***@nats": scheme "http"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestProblemsAreBounded: a file of many unknown keys and huge values gives
// an error of bounded size.
func TestProblemsAreBounded(t *testing.T) {
	m := minimal()
	for i := range 5000 {
		m[fmt.Sprintf("Junk%05d", i)] = 1
	}
	section(m, "Mysql")["Flavor"] = strings.Repeat("x", 1<<20)
	_, err := Parse(encode(t, m), "test.json", nil)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if n := len(err.Error()); n > 20000 {
		t.Fatalf("the error is %d bytes", n)
	}
	if !strings.Contains(err.Error(), "5001 configuration problems") || !strings.Contains(err.Error(), "... and 4951 more (fix these first)") {
		t.Fatalf("error does not count and cap the problems:\n%.2000s", err)
	}
}

// TestTLSAndAuthRules covers the TLS and NATS authentication settings.
func TestTLSAndAuthRules(t *testing.T) {
	ca := writeFile(t, "ca.pem", "pem")
	for name, tc := range map[string]struct {
		mod  func(m map[string]any)
		want []string // substrings of the error; none: valid
	}{
		"mysql verify_identity with a CA": {mod: func(m map[string]any) {
			section(m, "Mysql")["TLS"] = map[string]any{"Mode": "verify_identity", "CA": ca}
		}},
		"mysql unknown mode": {mod: func(m map[string]any) {
			section(m, "Mysql")["TLS"] = map[string]any{"Mode": "VERIFY_FULL"}
		}, want: []string{`Mysql.TLS.Mode: "VERIFY_FULL" is not one of`}},
		"cert without key, missing CA": {mod: func(m map[string]any) {
			section(m, "Mysql")["TLS"] = map[string]any{"Cert": ca, "CA": "/missing/ca.pem"}
		}, want: []string{"Mysql.TLS: Cert and Key go together", `Mysql.TLS.CA: cannot read "/missing/ca.pem"`}},
		"preferred is MySQL's only": {mod: func(m map[string]any) {
			section(m, "Stan")["TLS"] = map[string]any{"Mode": "preferred"}
		}, want: []string{`Stan.TLS.Mode: "preferred" is not one of`}},
		"two ways to authenticate": {mod: func(m map[string]any) {
			section(m, "Stan")["Auth"] = map[string]any{"User": "u", "Password": "p", "Token": "t"}
		}, want: []string{"Stan.Auth: sets User/Password and Token; use one way to authenticate"}},
		"user without password": {mod: func(m map[string]any) {
			section(m, "Stan")["Auth"] = map[string]any{"User": "u"}
		}, want: []string{"Stan.Auth.Password: is required with User"}},
		"embedded server open to the network": {mod: func(m map[string]any) {
			m["MQName"], m["ProName"] = "jetstream", "app."
			section(m, "JetStream")["Listen"] = "0.0.0.0:4222"
		}, want: []string{`JetStream.Listen: "0.0.0.0:4222" lets other hosts reach the embedded server`}},
		"embedded server open to the network, with a token": {mod: func(m map[string]any) {
			m["MQName"], m["ProName"] = "jetstream", "app."
			section(m, "JetStream")["Listen"] = "0.0.0.0:4222"
			section(m, "JetStream")["Auth"] = map[string]any{"Token": "t"}
		}},
		"embedded server with a creds file": {mod: func(m map[string]any) {
			m["MQName"], m["ProName"] = "jetstream", "app."
			section(m, "JetStream")["Auth"] = map[string]any{"CredsFile": ca}
		}, want: []string{"JetStream.Auth.CredsFile: the embedded server cannot check credentials files"}},
	} {
		t.Run(name, func(t *testing.T) {
			m := minimal()
			tc.mod(m)
			_, err := Parse(encode(t, m), "test.json", nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestRedactedHidesEverySecret: Redacted masks every password and token and
// the credentials in broker URLs.
func TestRedactedHidesEverySecret(t *testing.T) {
	c := Defaults()
	c.Mysql.Password, c.Redis.Password = "m-pw", "r-pw"
	c.Stan.Auth.Password, c.Stan.Auth.Token = "s-pw", "s-tok"
	c.JetStream.Auth.Password, c.JetStream.Auth.Token = "j-pw", "j-tok"
	c.Kafka.SASL.Password = "k-pw"
	c.Stan.Host, c.JetStream.URL = "nats://u:host-pw@h", "nats://TOKEN-in-url@h"
	r := fmt.Sprintf("%+v", c.Redacted())
	for _, secret := range []string{"m-pw", "r-pw", "s-pw", "s-tok", "j-pw", "j-tok", "k-pw", "host-pw", "TOKEN-in-url"} {
		if strings.Contains(r, secret) {
			t.Errorf("Redacted shows %q", secret)
		}
	}
	if c.Mysql.Password != "m-pw" {
		t.Fatal("Redacted changed the original")
	}
}

// TestMysqlTLSMode: an unset Mysql.TLS.Mode is preferred, but
// verify_identity once a CA or a client certificate is given; a set mode
// is kept. Load applies it.
func TestMysqlTLSMode(t *testing.T) {
	for _, tc := range []struct {
		tls  TLS
		want string
	}{
		{TLS{}, TLSPreferred},
		{TLS{CA: "ca.pem"}, TLSVerifyIdentity},
		{TLS{Cert: "c.pem", Key: "k.pem"}, TLSVerifyIdentity},
		{TLS{Mode: TLSPreferred, CA: "ca.pem"}, TLSPreferred},
		{TLS{Mode: TLSDisabled}, TLSDisabled},
	} {
		if got := tc.tls.EffectiveMysql(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.tls, got, tc.want)
		}
	}
	c := &Config{Mysql: Mysql{TLS: TLS{CA: "ca.pem"}}}
	c.applyStringDefaults()
	if c.Mysql.TLS.Mode != TLSVerifyIdentity {
		t.Errorf("defaults with a CA: Mysql.TLS.Mode %q, want %q", c.Mysql.TLS.Mode, TLSVerifyIdentity)
	}
}
