package binlog

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// fakeClearTextServer is a MySQL server that greets with a handshake v10
// (mysql_native_password, no TLS), reads the client's handshake response,
// asks for an auth switch to mysql_clear_password and records whatever the
// client sends after that.
type fakeClearTextServer struct {
	l net.Listener

	mu       sync.Mutex
	received [][]byte // per connection: everything the client sent
	switched int      // connections that were sent the auth switch
	done     sync.WaitGroup
}

func startFakeClearTextServer(t *testing.T) *fakeClearTextServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClearTextServer{l: l}
	t.Cleanup(func() { l.Close(); f.done.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.done.Add(1)
			go func() { defer f.done.Done(); f.serve(c) }()
		}
	}()
	return f
}

func (f *fakeClearTextServer) port() uint16 {
	return uint16(f.l.Addr().(*net.TCPAddr).Port)
}

func writePacket(w io.Writer, seq byte, payload []byte) error {
	hdr := []byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), seq}
	_, err := w.Write(append(hdr, payload...))
	return err
}

func readPacket(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	p := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
	_, err := io.ReadFull(r, p)
	return append(hdr[:], p...), err
}

func (f *fakeClearTextServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var got bytes.Buffer
	defer func() {
		f.mu.Lock()
		f.received = append(f.received, got.Bytes())
		f.mu.Unlock()
	}()
	salt := []byte("abcdefghijklmnopqrst") // 20 bytes
	var hs bytes.Buffer
	hs.WriteByte(10)
	hs.WriteString("5.7.99-fake\x00")
	_ = binary.Write(&hs, binary.LittleEndian, uint32(7))
	hs.Write(salt[:8])
	hs.WriteByte(0)
	// CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS |
	// CLIENT_SECURE_CONNECTION; no CLIENT_SSL.
	_ = binary.Write(&hs, binary.LittleEndian, uint16(0x0001|0x0200|0x2000|0x8000))
	hs.WriteByte(0x21)
	_ = binary.Write(&hs, binary.LittleEndian, uint16(2))
	_ = binary.Write(&hs, binary.LittleEndian, uint16(0x0008)) // CLIENT_PLUGIN_AUTH
	hs.WriteByte(21)
	hs.Write(make([]byte, 10))
	hs.Write(salt[8:])
	hs.WriteByte(0)
	hs.WriteString("mysql_native_password\x00")
	if writePacket(c, 0, hs.Bytes()) != nil {
		return
	}
	resp, err := readPacket(c)
	got.Write(resp)
	if err != nil {
		return
	}
	// The auth switch, split over two writes so that the client's reads
	// see it in pieces.
	sw := append([]byte{0xfe}, []byte("mysql_clear_password\x00")...)
	sw = append(sw, salt...)
	sw = append(sw, 0)
	hdr := []byte{byte(len(sw)), 0, 0, 2}
	f.mu.Lock()
	f.switched++
	f.mu.Unlock()
	if _, err := c.Write(append(hdr, sw[:6]...)); err != nil {
		return
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Write(sw[6:]); err != nil {
		return
	}
	// Whatever the client sends now (a clear-text password would come here).
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(&got, c)
}

// TestClearTextPasswordRefused: a server that asks for the password in
// clear text over an unencrypted connection gets nothing: the admin
// connection and the binlog stream both fail with a permanent error that
// says so and carries a fix, and the password's bytes never reach the
// server (nor appear in the error).
func TestClearTextPasswordRefused(t *testing.T) {
	t.Parallel()
	const password = "pw-Cl34rT3xt-never-sent"
	f := startFakeClearTextServer(t)
	cfg := Config{Host: "127.0.0.1", Port: f.port(), User: "dbsync", Password: password, ServerID: 1001, ConnectTimeout: 5 * time.Second,
		TLSMode: "preferred"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := logrus.New()
	log.SetOutput(io.Discard)

	check := func(what string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Fatalf("%s: connected to a server that asked for the clear-text password", what)
		case !errors.Is(err, ErrClearTextPassword):
			t.Errorf("%s: error %v, want ErrClearTextPassword", what, err)
		case !failure.IsPermanent(err):
			t.Errorf("%s: error %v is not permanent", what, err)
		case !strings.Contains(failure.Fix(err), "Mysql.TLS.Mode"):
			t.Errorf("%s: fix %q does not name Mysql.TLS.Mode", what, failure.Fix(err))
		case strings.Contains(err.Error(), password):
			t.Errorf("%s: the error shows the password: %v", what, err)
		}
	}
	_, err := Connect(ctx, cfg, log)
	check("admin connection", err)

	// The binlog stream connects on its own; a Source whose connection
	// is closed is enough as the reader's catalog until the dump.
	src := &Source{cfg: cfg, log: log, flavor: "mysql", collations: map[uint64]string{}}
	err = NewReader(cfg, src, log).Run(ctx, position.Position{File: "mysql-bin.000001", Pos: 4}, nil, make(chan Event, 1))
	check("binlog stream", err)

	f.l.Close()
	f.done.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.switched < 2 {
		t.Fatalf("the fake server sent %d auth switch requests, want one per connection (2)", f.switched)
	}
	for i, b := range f.received {
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("connection %d: the server received the password in clear", i)
		}
	}
}

// TestGuardConnInspect feeds the guard the server's side of a connection
// phase byte by byte: only an auth switch to mysql_clear_password trips
// it, and nothing after the OK packet is inspected.
func TestGuardConnInspect(t *testing.T) {
	packet := func(seq byte, payload string) []byte {
		return append([]byte{byte(len(payload)), 0, 0, seq}, payload...)
	}
	handshake := packet(0, "\x0a5.7\x00whatever")
	for _, tc := range []struct {
		name   string
		stream []byte
		trip   bool
	}{
		{"native OK", bytes.Join([][]byte{handshake, packet(2, "\x00\x00\x00\x02\x00\x00\x00"), packet(1, "\xfemysql_clear_password\x00")}, nil), false},
		{"switch to caching_sha2", bytes.Join([][]byte{handshake, packet(2, "\xfecaching_sha2_password\x00salt\x00"), packet(4, "\x01\x03"), packet(5, "\x00\x00\x00")}, nil), false},
		{"switch to clear", bytes.Join([][]byte{handshake, packet(2, "\xfemysql_clear_password\x00salt\x00")}, nil), true},
		{"caching_sha2 full authentication", bytes.Join([][]byte{handshake, packet(2, "\x01\x04"), packet(3, "\xfemysql_clear_password\x00")}, nil), true},
		{"switch to sha256 then its public key", bytes.Join([][]byte{handshake, packet(2, "\xfesha256_password\x00salt\x00"),
			packet(4, "\x01-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")}, nil), true},
		{"error", bytes.Join([][]byte{handshake, packet(2, "\xff\x15\x04#28000denied")}, nil), false},
	} {
		for _, step := range []int{1, 3, len(tc.stream)} {
			c := &guardConn{}
			tripped := false
			for i := 0; i < len(tc.stream) && !tripped; i += step {
				tripped = c.inspect(tc.stream[i:min(i+step, len(tc.stream))])
			}
			if tripped != tc.trip {
				t.Errorf("%s, %d bytes a read: tripped %v, want %v", tc.name, step, tripped, tc.trip)
			}
		}
	}
}

// TestConnectError: each refusal retrying cannot change is a permanent
// error naming its cause, with a fix naming the setting; anything else is
// returned as it is.
func TestConnectError(t *testing.T) {
	c := &Config{Host: "db", Port: 3306, User: "dbsync", Password: "pw-never-shown", TLSMode: "disabled"}
	tripped, offers := &authGuard{}, &authGuard{}
	tripped.tripped.Store(true)
	offers.offersTLS.Store(true)
	denied := &mysql.MyError{Code: 1045, Message: "Access denied for user 'dbsync'@'10.0.0.1' (using password: YES)"}
	for _, tc := range []struct {
		name    string
		err     error
		withTLS bool
		guard   *authGuard
		want    string // in the message; "" means the error is returned unchanged
		fix     string
	}{
		{"clear-text password", errors.New("EOF"), false, tripped, "in clear text", "Mysql.TLS.Mode"},
		{"no TLS", errors.New("the MySQL Server does not support TLS required by the client"), true, &authGuard{}, "does not offer TLS", "Mysql.TLS.Mode"},
		{"expired", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}, true, &authGuard{}, "has expired", "renew"},
		{"unknown CA", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, true, &authGuard{}, "not accepted", "Mysql.TLS.CA"},
		{"MySQL requires secure transport", &mysql.MyError{Code: 3159, Message: "Connections using insecure transport are prohibited while --require_secure_transport=ON."}, false, &authGuard{}, "require_secure_transport=ON", "Mysql.TLS.Mode"},
		{"MariaDB refuses unencrypted", denied, false, offers, "although it offers TLS", "Mysql.TLS.Mode"},
		{"wrong password, no TLS offered", denied, false, &authGuard{}, "", ""},
		{"network", errors.New("connection refused"), false, &authGuard{}, "", ""},
	} {
		got := c.connectError(tc.err, tc.withTLS, tc.guard)
		switch {
		case tc.want == "":
			if got != tc.err {
				t.Errorf("%s: %v, want the error unchanged", tc.name, got)
			}
		case !strings.Contains(got.Error(), tc.want) || !strings.Contains(failure.Fix(got), tc.fix) || !failure.IsPermanent(got):
			t.Errorf("%s: %v (fix %q, permanent %v), want %q with a fix naming %q", tc.name, got, failure.Fix(got), failure.IsPermanent(got), tc.want, tc.fix)
		case strings.Contains(got.Error(), c.Password) || strings.Contains(failure.Fix(got), c.Password):
			t.Errorf("%s: the password leaks into %v", tc.name, got)
		}
	}
	if !IsRefusedLogin(c.connectError(denied, false, offers)) {
		t.Error("a login refused unencrypted is no longer a refused login")
	}
	if !IsRefusedLogin(&mysql.MyError{Code: 1698}) {
		t.Error("1698 is not a refused login")
	}
}

// TestPublicKeyExchangeRefused: go-mysql's own server with
// caching_sha2_password, over an unencrypted connection, asks for full
// authentication and would send its RSA key for the password: whoever
// answers in the server's place could decrypt it. The login is refused
// before the password leaves, with a permanent error and the fix.
func TestPublicKeyExchangeRefused(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	db.CreateReplicationUser(t, "dbsync", "secret-Pk-7q")
	proxy := testenv.StartMySQLProxy(t, db, testenv.MySQLProxyOptions{User: "dbsync", Password: "secret-Pk-7q",
		AuthPlugin: mysql.AUTH_CACHING_SHA2_PASSWORD})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Connect(ctx, Config{Host: proxy.Host, Port: uint16(proxy.Port), User: "dbsync", Password: "secret-Pk-7q", ServerID: 1001,
		ConnectTimeout: 5 * time.Second, TLSMode: "preferred"}, logrus.New())
	switch {
	case err == nil:
		t.Fatal("logged in by a public-key exchange over an unencrypted connection")
	case !errors.Is(err, ErrClearTextPassword) || !failure.IsPermanent(err) || !strings.Contains(failure.Fix(err), "Mysql.TLS.Mode"):
		t.Fatalf("error %v (fix %q), want a permanent ErrClearTextPassword naming Mysql.TLS.Mode", err, failure.Fix(err))
	case strings.Contains(err.Error(), "secret-Pk-7q"):
		t.Fatalf("the error shows the password: %v", err)
	}
}
