package wiring

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/dbsync/dbsync/internal/natsembed"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/mq"
)

// natsAuth is the mq form of a NATS authentication section (its secret
// files were read into Password and Token at load).
func natsAuth(a config.NATSAuth) mq.NATSAuth {
	return mq.NATSAuth{User: a.User, Password: a.Password, Token: a.Token, NKeySeedFile: a.NKeySeedFile, CredsFile: a.CredsFile}
}

// natsTLS builds the tls.Config of a connection to the NATS server at
// rawURL from the TLS section key (e.g. "JetStream.TLS"): nil when TLS is
// off (no Mode, CA or Cert, and a nats:// URL). With verify_identity the
// certificate must name ServerName, or else the host of the server
// connected to. A file that cannot be loaded is an error naming the
// setting.
func natsTLS(key string, t config.TLS, rawURL string) (*tls.Config, error) {
	// No default ServerName: nats.go checks each server (a server list, a
	// cluster's discovered servers) against its own host name.
	return clientTLS(key, t, t.Effective(tlsScheme(rawURL)), "")
}

// tlsScheme reports whether a NATS URL (or the first of a list) has the
// tls:// scheme, which asks for TLS.
func tlsScheme(rawURL string) bool {
	s := strings.TrimSpace(rawURL)
	if i := strings.Index(s, ","); i >= 0 { // a server list: the first one
		s = s[:i]
	}
	u, err := url.Parse(s)
	return err == nil && strings.EqualFold(u.Scheme, "tls")
}

// natsAuthFix gives a connection the server refused for its credentials a
// fix naming the settings to check (key is "JetStream.Auth" or
// "Stan.Auth"), and keeps it permanent. It never names a secret; other
// errors are returned as they are.
func natsAuthFix(key string, a config.NATSAuth, err error) error {
	if !errors.Is(err, mq.ErrUnauthorized) {
		return err
	}
	env := "DBSYNC_" + strings.ToUpper(strings.TrimSuffix(key, ".Auth")) + "_" // DBSYNC_JETSTREAM_, DBSYNC_STAN_
	var fix string
	switch a.Kind() {
	case "":
		fix = fmt.Sprintf("the NATS server requires authentication: set %s.User and %[1]s.PasswordFile, %[1]s.TokenFile, %[1]s.NKeySeedFile or %[1]s.CredsFile", key)
	case "user/password":
		fix = fmt.Sprintf("check %s.User (%q) and %[1]s.Password / %[1]s.PasswordFile (%[3]sUSER, %[3]sPASSWORD, %[3]sPASSWORD_FILE): the NATS server refused them", key, a.User, env)
	case "token":
		fix = fmt.Sprintf("check %s.Token / %[1]s.TokenFile (%[2]sTOKEN, %[2]sTOKEN_FILE): the NATS server refused the token", key, env)
	case "nkey":
		fix = fmt.Sprintf("check %s.NKeySeedFile (%q): the NATS server does not know its public key", key, a.NKeySeedFile)
	case "creds":
		fix = fmt.Sprintf("check %s.CredsFile (%q): the NATS server refused the user JWT (expired, revoked, or of another operator)", key, a.CredsFile)
	}
	return failure.Permanent(failure.WithFix(err, fix))
}

// embeddedAuth is how the embedded server authenticates its clients:
// JetStream.Auth, which every client (the producer included) must present.
// Credentials files need an operator and are refused by validation; an
// nkey is admitted by the public key of JetStream.Auth.NKeySeedFile.
func embeddedAuth(a config.NATSAuth) (natsembed.Auth, error) {
	switch a.Kind() {
	case "":
		return natsembed.Auth{}, nil
	case "user/password":
		return natsembed.Auth{Users: []natsembed.User{{Name: a.User, Password: a.Password}}}, nil
	case "token":
		return natsembed.Auth{Token: a.Token}, nil
	case "nkey":
		pub, err := natsembed.NKeyPublic(a.NKeySeedFile)
		if err != nil {
			return natsembed.Auth{}, failure.Permanent(failure.WithFix(fmt.Errorf("JetStream.Auth.NKeySeedFile %q: %w", a.NKeySeedFile, err),
				"point JetStream.Auth.NKeySeedFile at a file holding a user nkey seed (nk -gen user)"))
		}
		return natsembed.Auth{NKeys: []natsembed.NKeyUser{{PublicKey: pub}}}, nil
	}
	return natsembed.Auth{}, failure.Permanent(failure.WithFix(errors.New("JetStream.Auth.CredsFile: the embedded NATS server cannot check credentials files"),
		"use JetStream.Auth.User and PasswordFile, TokenFile or NKeySeedFile with the embedded server, or set JetStream.URL to a NATS server run with an operator"))
}
