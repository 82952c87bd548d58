package binlog

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
)

// ErrClearTextPassword is matched (errors.Is) by the error of a connection
// that was dropped because, over an unencrypted connection, the server asked
// for the password in a form whoever is in the middle can read: in clear
// text (an auth switch to mysql_clear_password), or encrypted with an RSA
// key the server sends (sha256_password, caching_sha2_password's full
// authentication), which a man in the middle replaces with its own. dbsync
// never sends it so.
var ErrClearTextPassword = errors.New("over an unencrypted connection the server asked for the password in clear text or under a public key it sends (readable by a man in the middle); dbsync refused to send it")

// ErrPlaintextLoginRefused is matched (errors.Is) by the error of a login
// refused over an unencrypted connection by a server that offers TLS: the
// server may require secure transport (MariaDB then answers "Access
// denied"), or the credentials are wrong.
var ErrPlaintextLoginRefused = errors.New("a server with require_secure_transport=ON refuses every unencrypted login this way")

// errSecureTransport is MySQL's answer to an unencrypted connection when
// require_secure_transport=ON (ER_SECURE_TRANSPORT_REQUIRED). MariaDB has
// no such error: it answers "Access denied" (see ErrPlaintextLoginRefused).
const errSecureTransport = 3159

// tlsOptional reports whether a server that does not offer TLS is
// connected to unencrypted: TLS mode "preferred" without a CA (a CA given
// is meant to be checked).
func (c *Config) tlsOptional() bool {
	return c.TLSMode == "preferred" && (c.TLS == nil || c.TLS.RootCAs == nil)
}

// tlsModeName is the TLS mode as the messages name it.
func (c *Config) tlsModeName() string {
	switch {
	case c.TLSMode != "":
		return c.TLSMode
	case c.TLS != nil:
		return "required"
	}
	return "disabled"
}

// connectClient opens a client connection with Config.TLS, refusing to
// send the password in clear text over an unencrypted connection. With TLS
// mode "preferred", a server that does not offer TLS is connected to
// unencrypted (logged at info); in the other TLS modes it is refused. prepare
// is applied to the connection before the handshake. The refusals retrying
// cannot change (see connectError) are permanent errors naming the address,
// with a fix; other errors are returned as go-mysql reports them.
func (c *Config) connectClient(ctx context.Context, log logrus.FieldLogger, prepare func(*client.Conn) error) (*client.Conn, error) {
	tlsCfg := c.TLS
	conn, guard, err := c.connectOnce(ctx, tlsCfg, prepare)
	if err != nil && tlsCfg != nil && c.tlsOptional() && serverLacksTLS(err) {
		log.WithField("addr", c.addr()).Info("the server offers no TLS: connecting unencrypted, as TLS mode preferred allows")
		tlsCfg = nil
		conn, guard, err = c.connectOnce(ctx, nil, prepare)
	}
	if err != nil {
		return nil, c.connectError(err, tlsCfg != nil, guard)
	}
	return conn, nil
}

// connectOnce opens one connection, with TLS when tlsCfg is set; guard
// watched it.
func (c *Config) connectOnce(ctx context.Context, tlsCfg *tls.Config, prepare func(*client.Conn) error) (*client.Conn, *authGuard, error) {
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	guard := &authGuard{}
	conn, err := client.ConnectWithDialer(ctx, "", c.addr(), c.User, c.Password, "", guard.dialer(timeout, tlsCfg == nil),
		func(cc *client.Conn) error {
			cc.SetTLSConfig(tlsCfg)
			if prepare != nil {
				return prepare(cc)
			}
			return nil
		})
	return conn, guard, err
}

// connectError classifies the error of a failed connection attempt: a
// clear-text password request, a server without TLS, a certificate that
// was not accepted, a server that requires TLS, and a login refused
// unencrypted by a server that offers TLS are permanent errors with their
// fix; others are returned as they are.
func (c *Config) connectError(err error, withTLS bool, guard *authGuard) error {
	var me *mysql.MyError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case guard.refused():
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s, user %q: %w", c.addr(), c.User, ErrClearTextPassword)),
			"encrypt the connection: enable TLS on the server and set Mysql.TLS.Mode to verify_identity with Mysql.TLS.CA; "+
				"or, on a trusted network, give the account an authentication plugin that needs no password exchange in clear (mysql_native_password, ed25519)")
	case withTLS && serverLacksTLS(err):
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s does not offer TLS, which Mysql.TLS.Mode %q requires", c.addr(), c.tlsModeName())),
			"enable TLS on the server (ssl_cert and ssl_key in its config file), or on a trusted network set Mysql.TLS.Mode to preferred or disabled")
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s: TLS (Mysql.TLS.Mode %q): the server's certificate has expired: %w", c.addr(), c.tlsModeName(), err)),
			"renew the server's certificate (ssl_cert) and reload it (MariaDB: FLUSH SSL; MySQL: ALTER INSTANCE RELOAD TLS)")
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &badName), errors.As(err, &invalid),
		withTLS && strings.Contains(err.Error(), "is not signed by the configured CA"):
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s: TLS (Mysql.TLS.Mode %q): the server's certificate was not accepted: %w", c.addr(), c.tlsModeName(), err)),
			"point Mysql.TLS.CA at the CA that signed the server's certificate, and Mysql.TLS.ServerName (default Mysql.Host) at a name the certificate carries")
	case errors.As(err, &me) && me.Code == errSecureTransport ||
		!withTLS && strings.Contains(err.Error(), "require_secure_transport"):
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s refuses unencrypted connections (the server has require_secure_transport=ON) and Mysql.TLS.Mode is %q: %w",
			c.addr(), c.tlsModeName(), err)),
			"set Mysql.TLS.Mode to verify_identity with Mysql.TLS.CA (the CA that signed the server's certificate), or at least to required")
	case !withTLS && guard.serverOffersTLS() && IsRefusedLogin(err):
		// MariaDB answers an unencrypted login to a server with
		// require_secure_transport=ON with a plain "Access denied".
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s refused user %q over an unencrypted connection (Mysql.TLS.Mode %q) although it offers TLS: %w: %w", c.addr(), c.User, c.tlsModeName(), ErrPlaintextLoginRefused, err)),
			"if the server requires secure transport (SELECT @@require_secure_transport), set Mysql.TLS.Mode to verify_identity with Mysql.TLS.CA; "+
				"otherwise check Mysql.Username and Mysql.Password (or DBSYNC_MYSQL_USERNAME, DBSYNC_MYSQL_PASSWORD)")
	}
	return err
}

// serverLacksTLS reports whether err is go-mysql's refusal of a server
// whose handshake does not offer TLS (no CLIENT_SSL capability).
func serverLacksTLS(err error) bool {
	return strings.Contains(err.Error(), "does not support TLS")
}

// tlsState returns the TLS state of conn, nil when it is not encrypted.
func tlsState(conn *client.Conn) *tls.ConnectionState {
	if conn == nil || conn.Conn == nil {
		return nil
	}
	if tc, ok := conn.Conn.Conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

// tlsFields are the log fields describing a connection's encryption.
func tlsFields(st *tls.ConnectionState) logrus.Fields {
	if st == nil {
		return logrus.Fields{"tls": "off"}
	}
	return logrus.Fields{"tls": tls.VersionName(st.Version), "cipher": tls.CipherSuiteName(st.CipherSuite)}
}

// authGuard watches the unencrypted connections it dials and drops one
// whose server asks for the password in clear text, before the client
// answers.
type authGuard struct {
	tripped   atomic.Bool
	offersTLS atomic.Bool
}

// serverOffersTLS reports whether the server's initial handshake offered
// TLS (CLIENT_SSL) on an unencrypted connection the guard watched.
func (g *authGuard) serverOffersTLS() bool { return g.offersTLS.Load() }

// refused reports whether a connection was dropped for asking for the
// clear-text password.
func (g *authGuard) refused() bool { return g.tripped.Load() }

// dialer dials TCP with timeout; with watch the connection is inspected
// until authentication ends.
func (g *authGuard) dialer(timeout time.Duration, watch bool) client.Dialer {
	return g.idleDialer(timeout, watch, 0, 0)
}

// idleDialer is dialer whose connections fail a read after readTimeout
// of silence (see idleConn; 0: never), for a server sending a heartbeat
// every heartbeat while idle.
func (g *authGuard) idleDialer(timeout time.Duration, watch bool, readTimeout, heartbeat time.Duration) client.Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return conn, err
		}
		if watch {
			conn = &guardConn{Conn: conn, guard: g}
		}
		return newIdleConn(conn, readTimeout, heartbeat), nil
	}
}

// clearPasswordSwitch is the start of an auth switch request (0xFE) to
// mysql_clear_password.
var clearPasswordSwitch = append([]byte{mysql.EOF_HEADER}, []byte(mysql.AUTH_CLEAR_PASSWORD+"\x00")...)

// moreDataHeader starts an "auth more data" packet; fullAuthRequest is
// caching_sha2_password's request for full authentication and
// publicKeyData the start of a packet carrying the server's RSA key.
const moreDataHeader = 0x01

var (
	fullAuthRequest = []byte{moreDataHeader, mysql.CACHE_SHA2_FULL_AUTH}
	publicKeyData   = []byte("\x01-----BEGIN")
)

// guardConn follows the server's packets of the connection phase: the
// initial handshake, then auth switch / more data packets until OK or ERR.
// An auth switch request to mysql_clear_password, a request for full
// authentication or a public key closes the connection and fails the read
// that would have delivered it, so the client never sees it and never sends
// the password.
type guardConn struct {
	net.Conn
	guard *authGuard

	done    bool    // authentication ended: pass everything through
	packets int     // packets seen
	hdr     [4]byte // the current packet's header, as far as read
	hdrN    int
	left    int    // payload bytes of the current packet not yet seen
	head    []byte // the first bytes of the current payload
}

func (c *guardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.done || n == 0 {
		return n, err
	}
	if c.inspect(p[:n]) {
		c.guard.tripped.Store(true)
		_ = c.Conn.Close()
		return 0, ErrClearTextPassword
	}
	return n, err
}

// inspect follows the packets in b and reports whether one is an auth
// switch request to mysql_clear_password.
func (c *guardConn) inspect(b []byte) bool {
	for len(b) > 0 && !c.done {
		if c.hdrN < 4 {
			k := copy(c.hdr[c.hdrN:], b)
			c.hdrN += k
			b = b[k:]
			if c.hdrN < 4 {
				return false
			}
			c.left = int(c.hdr[0]) | int(c.hdr[1])<<8 | int(c.hdr[2])<<16
			c.head = c.head[:0]
		}
		k := min(c.left, len(b))
		if want := maxHead - len(c.head); want > 0 {
			c.head = append(c.head, b[:min(k, want)]...)
		}
		c.left -= k
		b = b[k:]
		if c.packets > 0 && len(c.head) > 0 {
			switch c.head[0] {
			case mysql.OK_HEADER, mysql.ERR_HEADER:
				if c.left == 0 {
					c.done = true
				}
			case mysql.EOF_HEADER:
				if bytes.HasPrefix(c.head, clearPasswordSwitch) {
					return true
				}
			case moreDataHeader:
				// caching_sha2_password asks for full authentication, or
				// the server sends the RSA key the password would be
				// encrypted with: both hand the password to whoever
				// answers in the server's place.
				if bytes.HasPrefix(c.head, fullAuthRequest) || bytes.HasPrefix(c.head, publicKeyData) {
					return true
				}
			}
		}
		if c.left == 0 {
			if c.packets == 0 && c.guard != nil && handshakeOffersTLS(c.head) {
				c.guard.offersTLS.Store(true)
			}
			c.packets++
			c.hdrN = 0
		}
	}
	return false
}

// maxHead is how much of a packet's payload the guard keeps: enough for
// the initial handshake's capability flags and an auth switch's plugin
// name.
const maxHead = 160

// handshakeOffersTLS reports whether the start of an initial handshake v10
// payload has the CLIENT_SSL capability.
func handshakeOffersTLS(p []byte) bool {
	if len(p) < 2 || p[0] != mysql.ClassicProtocolVersion {
		return false
	}
	end := bytes.IndexByte(p[1:], 0)
	if end < 0 {
		return false
	}
	pos := 1 + end + 1 + 4 + 8 + 1 // version, NUL, connection id, scramble, filler
	if len(p) < pos+2 {
		return false
	}
	return binary.LittleEndian.Uint16(p[pos:])&uint16(mysql.CLIENT_SSL) != 0
}
