package mq

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/dbsync/dbsync/pkg/failure"
)

// NATSAuth is how a client authenticates to a NATS server: at most one of
// User and Password, Token, NKeySeedFile and CredsFile. The zero value
// authenticates with nothing.
type NATSAuth struct {
	// User and Password: the server's user/password authentication.
	User     string
	Password string
	// Token: the server's token authentication.
	Token string
	// NKeySeedFile is a file holding the user's nkey seed ("SU..."); the
	// client signs the server's challenge with it.
	NKeySeedFile string
	// CredsFile is a NATS credentials file (a user JWT and its nkey seed),
	// for servers run with an operator.
	CredsFile string
}

// Kind names the authentication a configures: "user/password", "token",
// "nkey", "creds" or "" (none).
func (a NATSAuth) Kind() string {
	switch {
	case a.CredsFile != "":
		return "creds"
	case a.NKeySeedFile != "":
		return "nkey"
	case a.Token != "":
		return "token"
	case a.User != "" || a.Password != "":
		return "user/password"
	}
	return ""
}

// check reports a NATSAuth that sets more than one way to authenticate,
// or a password without a user. It never shows a secret.
func (a NATSAuth) check() error {
	n := 0
	if a.User != "" || a.Password != "" {
		n++
		if a.User == "" {
			return errors.New("Auth: a password without a user; set User")
		}
	}
	for _, set := range []bool{a.Token != "", a.NKeySeedFile != "", a.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("Auth: sets more than one of User/Password, Token, NKeySeedFile and CredsFile; use one way to authenticate")
	}
	return nil
}

// ErrUnauthorized marks a connection the NATS server refused: wrong or
// missing credentials, expired or revoked ones. It is permanent (retrying
// with the same credentials cannot succeed). Errors wrapping it never carry
// the secret.
var ErrUnauthorized = failure.Permanent(errors.New("mq: the NATS server refused the credentials"))

// ErrPermission marks an operation the NATS server did not allow the
// authenticated user (a publish or subscribe outside its permissions).
var ErrPermission = failure.Permanent(errors.New("mq: the NATS user is not allowed to do this"))

// SecurityOptions returns the nats options that authenticate with auth and,
// when tlsConfig is not nil, require a TLS connection checked by tlsConfig
// (it is cloned). It is the one place every dbsync connection to NATS (the
// publishers, the probes and the consumer SDK) turns its settings into
// options. It fails, naming the setting but never a secret, when auth sets
// more than one way to authenticate or a seed or credentials file cannot
// be read.
func SecurityOptions(auth NATSAuth, tlsConfig *tls.Config) ([]nats.Option, error) {
	if err := auth.check(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch auth.Kind() {
	case "user/password":
		opts = append(opts, nats.UserInfo(auth.User, auth.Password))
	case "token":
		opts = append(opts, nats.Token(auth.Token))
	case "nkey":
		o, err := nats.NkeyOptionFromSeed(auth.NKeySeedFile)
		if err != nil {
			// nats' errors name the file or say the seed is invalid; they
			// never quote it.
			return nil, fmt.Errorf("Auth.NKeySeedFile %q: %w", auth.NKeySeedFile, secretFree(err))
		}
		opts = append(opts, o)
	case "creds":
		if _, err := os.Stat(auth.CredsFile); err != nil {
			return nil, fmt.Errorf("Auth.CredsFile %q: %w", auth.CredsFile, unwrapPath(err))
		}
		opts = append(opts, nats.UserCredentials(auth.CredsFile))
	}
	if tlsConfig != nil {
		opts = append(opts, nats.Secure(tlsConfig))
	}
	return opts, nil
}

// secretFree returns err when its text is one of nats' or the OS's fixed
// messages about a seed file, else a generic error: a parser's message
// might quote what it could not parse.
func secretFree(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return errors.New("the file holds no valid nkey seed (a line starting with SU)")
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// AuthError marks err, an error of a nats connection, with
// ErrUnauthorized when the server refused the credentials (nats'
// authorization, expired or revoked errors) and with ErrPermission on a
// permissions violation; other errors are returned as they are.
func AuthError(err error) error {
	switch {
	case err == nil:
		return nil
	case isAuthFailure(err):
		return mark(ErrUnauthorized, err)
	case errors.Is(err, nats.ErrPermissionViolation):
		return mark(ErrPermission, err)
	}
	return err
}

// isAuthFailure reports an error of a server that refused the credentials.
func isAuthFailure(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired)
}
