package testenv

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// MySQLProxy is a MySQL protocol server in front of a MariaDB that passes
// queries and prepared statements through but, like a SQL proxy or a
// managed service without replication, refuses the replication commands
// (COM_REGISTER_SLAVE, COM_BINLOG_DUMP) and, optionally, queries that
// call a given function.
type MySQLProxy struct {
	Host string
	Port int

	ln     net.Listener
	target *MariaDB
	user   string
	pass   string
	// refuseFunc, when set, makes a query mentioning it fail as if the
	// function did not exist.
	refuseFunc string
	authPlugin string

	mu    sync.Mutex
	conns []net.Conn
}

// MySQLProxyOptions adjusts StartMySQLProxy.
type MySQLProxyOptions struct {
	// User and Password are the account clients log in with; it must exist
	// on the target (the proxy logs in with it there too).
	User, Password string
	// RefuseFunction makes every query that calls it fail with MySQL error
	// 1305 ("FUNCTION ... does not exist"), e.g. "BINLOG_GTID_POS".
	RefuseFunction string
	// AuthPlugin is how clients log in (go-mysql's server: no TLS);
	// default mysql_native_password. caching_sha2_password's full
	// authentication sends the proxy's RSA key over the plaintext
	// connection.
	AuthPlugin string
}

// StartMySQLProxy listens on a free loopback port; it stops at test cleanup.
func StartMySQLProxy(t testing.TB, target *MariaDB, opts MySQLProxyOptions) *MySQLProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: mysql proxy listen: %v", err)
	}
	p := &MySQLProxy{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, target: target,
		user: opts.User, pass: opts.Password, refuseFunc: strings.ToUpper(opts.RefuseFunction), authPlugin: opts.AuthPlugin}
	if p.authPlugin == "" {
		p.authPlugin = mysql.AUTH_NATIVE_PASSWORD
	}
	srv := server.NewDefaultServer()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			go p.serve(srv, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	return p
}

// serve runs one client session against its own connection to the target.
func (p *MySQLProxy) serve(srv *server.Server, c net.Conn) {
	defer c.Close()
	up, err := client.Connect(net.JoinHostPort(p.target.Host, strconv.Itoa(p.target.Port)), p.user, p.pass, "")
	if err != nil {
		return
	}
	defer up.Close()
	auth := server.NewInMemoryAuthenticationHandler(p.authPlugin)
	if err := auth.AddUser(p.user, p.pass); err != nil {
		return
	}
	conn, err := srv.NewCustomizedConn(c, auth, &proxyHandler{p: p, up: up})
	if err != nil {
		return
	}
	for !conn.Closed() {
		if err := conn.HandleCommand(); err != nil {
			return
		}
	}
}

// proxyHandler passes one session's commands to up.
type proxyHandler struct {
	p  *MySQLProxy
	up *client.Conn
}

func (h *proxyHandler) refused(query string) error {
	if h.p.refuseFunc != "" && strings.Contains(strings.ToUpper(query), h.p.refuseFunc) {
		return mysql.NewError(1305, "FUNCTION "+strings.ToLower(h.p.refuseFunc)+" does not exist")
	}
	return nil
}

func (h *proxyHandler) UseDB(db string) error { return h.up.UseDB(db) }

func (h *proxyHandler) HandleQuery(query string) (*mysql.Result, error) {
	if err := h.refused(query); err != nil {
		return nil, err
	}
	return h.up.Execute(query)
}

func (h *proxyHandler) HandleFieldList(string, string) ([]*mysql.Field, error) {
	return nil, errors.New("COM_FIELD_LIST is not supported by the test proxy")
}

func (h *proxyHandler) HandleStmtPrepare(query string) (int, int, any, error) {
	if err := h.refused(query); err != nil {
		return 0, 0, nil, err
	}
	st, err := h.up.Prepare(query)
	if err != nil {
		return 0, 0, nil, err
	}
	return st.ParamNum(), st.ColumnNum(), st, nil
}

func (h *proxyHandler) HandleStmtExecute(ctx any, _ string, args []any) (*mysql.Result, error) {
	return ctx.(*client.Stmt).Execute(args...)
}

func (h *proxyHandler) HandleStmtClose(ctx any) error { return ctx.(*client.Stmt).Close() }

// HandleOtherCommand refuses everything else, the replication commands
// included, as a proxy without replication support does.
func (h *proxyHandler) HandleOtherCommand(cmd byte, _ []byte) error {
	return mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "command not implemented")
}
