package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// TLS modes (TLS.Mode), the MySQL client's names.
const (
	TLSDisabled       = "disabled"
	TLSPreferred      = "preferred"
	TLSRequired       = "required"
	TLSVerifyCA       = "verify_ca"
	TLSVerifyIdentity = "verify_identity"
)

// TLSModes lists the valid TLS.Mode values.
func TLSModes() []string {
	return []string{TLSDisabled, TLSPreferred, TLSRequired, TLSVerifyCA, TLSVerifyIdentity}
}

// Effective returns the mode of a NATS or Redis connection: Mode when set,
// else verify_identity when CA or Cert is set or secureScheme (a tls:// or
// rediss:// URL), else disabled.
func (t TLS) Effective(secureScheme bool) string {
	switch {
	case t.Mode != "":
		return t.Mode
	case t.CA != "" || t.Cert != "" || secureScheme:
		return TLSVerifyIdentity
	}
	return TLSDisabled
}

// EffectiveMysql returns the mode of a MySQL connection: Mode when set,
// else verify_identity when CA or Cert is set (a CA given is meant to be
// checked, and a server that offers no TLS is then refused rather than
// talked to in clear), else the MySQL client's default, preferred.
func (t TLS) EffectiveMysql() string {
	switch {
	case t.Mode != "":
		return t.Mode
	case t.CA != "" || t.Cert != "":
		return TLSVerifyIdentity
	}
	return DefaultMysqlTLSMode
}

// Kind names the authentication n configures: "user/password", "token",
// "nkey", "creds" or "" (none).
func (n NATSAuth) Kind() string {
	switch {
	case n.CredsFile != "":
		return "creds"
	case n.NKeySeedFile != "":
		return "nkey"
	case n.Token != "" || n.TokenFile != "":
		return "token"
	case n.User != "" || n.Password != "" || n.PasswordFile != "":
		return "user/password"
	}
	return ""
}

// maxSecretFile bounds what is read from a secret file.
const maxSecretFile = 64 << 10

// secretPair is a secret setting and the setting naming a file that holds it.
type secretPair struct {
	key, fileKey string
	value, file  *string
}

func (c *Config) secretPairs() []secretPair {
	return []secretPair{
		{"Mysql.Password", "Mysql.PasswordFile", &c.Mysql.Password, &c.Mysql.PasswordFile},
		{"Redis.Password", "Redis.PasswordFile", &c.Redis.Password, &c.Redis.PasswordFile},
		{"Stan.Auth.Password", "Stan.Auth.PasswordFile", &c.Stan.Auth.Password, &c.Stan.Auth.PasswordFile},
		{"Stan.Auth.Token", "Stan.Auth.TokenFile", &c.Stan.Auth.Token, &c.Stan.Auth.TokenFile},
		{"JetStream.Auth.Password", "JetStream.Auth.PasswordFile", &c.JetStream.Auth.Password, &c.JetStream.Auth.PasswordFile},
		{"JetStream.Auth.Token", "JetStream.Auth.TokenFile", &c.JetStream.Auth.Token, &c.JetStream.Auth.TokenFile},
		{"Kafka.SASL.Password", "Kafka.SASL.PasswordFile", &c.Kafka.SASL.Password, &c.Kafka.SASL.PasswordFile},
	}
}

// readSecretFiles sets every secret that names a file to the file's content
// (its trailing newline dropped). Both a secret and its file set, an
// unreadable or an empty file are problems naming the setting and the path,
// never the content.
func (c *Config) readSecretFiles() []error {
	var errs []error
	for _, p := range c.secretPairs() {
		if *p.file == "" {
			continue
		}
		if *p.value != "" {
			errs = append(errs, &FieldError{Key: p.fileKey, Problem: fmt.Sprintf("is set, and so is %s; keep one", p.key)})
			continue
		}
		data, err := readSecretFile(*p.file)
		if err != nil {
			errs = append(errs, &FieldError{Key: p.fileKey, Problem: err.Error()})
			continue
		}
		*p.value = data
	}
	return errs
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %q: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %q: %w", path, unwrapPathError(err))
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("%q is larger than %d bytes; it must hold the secret alone", path, maxSecretFile)
	}
	data = bytes.TrimRight(data, "\r\n")
	if len(data) == 0 {
		return "", fmt.Errorf("%q is empty", path)
	}
	return string(data), nil
}

// unwrapPathError drops the path an *os.PathError repeats.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Secrets returns every secret value the config holds (passwords and
// tokens, from the file, the environment or a secret file), for a redactor
// to hide wherever they would appear.
func (c *Config) Secrets() []string {
	var out []string
	for _, p := range c.secretPairs() {
		if v := strings.TrimSpace(*p.value); v != "" {
			out = append(out, *p.value)
		}
	}
	return out
}
