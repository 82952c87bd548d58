package binlog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
)

// TxRows names the first Rows row changes of the transaction GTID.
type TxRows struct {
	GTID string
	Rows int
}

// Config says how to reach the source server and how to pose as its replica.
type Config struct {
	Host string
	Port uint16
	// Alternates are the other servers of the replication topology
	// ("host:port"): when the server connected to does not answer, a
	// Source connects to Host:Port and then these, in order.
	Alternates []string
	User       string
	Password   string
	// TLS, when set, encrypts every connection: the administrative ones and
	// the binlog stream. nil connects unencrypted.
	TLS *tls.Config
	// TLSMode is the configured mode (Mysql.TLS.Mode) the TLS errors name.
	// "preferred" connects unencrypted to a server that does not offer TLS
	// (logged at info); with any other mode such a server is refused.
	TLSMode string
	// ServerID is the replica server id dbsync registers with. It must be
	// unique among the server's replicas and differ from the server's own.
	ServerID uint32
	// Flavor is "mysql", "mariadb", or "" to detect it from VERSION().
	Flavor  string
	Charset string
	// HeartbeatPeriod asks the server for a heartbeat when it has nothing to
	// send; ReadTimeout (longer) declares the connection dead without one.
	HeartbeatPeriod time.Duration
	ReadTimeout     time.Duration
	ConnectTimeout  time.Duration
	// SourceName is written to every envelope's source.name.
	SourceName string
	// Include reports whether a table's rows are published; nil means all.
	Include func(db, table string) bool
	// SkipUnpublishable reports whether the rows of a table that cannot be
	// published (its name cannot be a broker subject, or a column has a
	// character set dbsync cannot convert) are handed on as Row.Unpublishable
	// markers (true) or stop the reader with a permanent error (pkg/failure) (false, and when
	// nil).
	SkipUnpublishable func(db, table string) bool
	// EventBuffer is how many parsed binlog events go-mysql may read ahead
	// (each up to the server's max_allowed_packet); default
	// DefaultEventBuffer.
	EventBuffer int
	// Reserve, when set, is called with the size of each event's encoded
	// rows before the event is handed on; it blocks while the pipeline's
	// memory budget is used up, and its error (ctx done) stops the reader.
	Reserve func(ctx context.Context, bytes int) error
	// OnStreamState, when set, is told when the binlog stream connects and
	// when it ends (with the reason).
	OnStreamState func(connected bool, err error)
	// Snapshots, when set, feeds snapshot chunks to the Reader, which
	// publishes them in binlog order with the live changes.
	Snapshots *SnapshotFeed
	// SkipGTIDs is a GTID state (position.GTIDState) whose transactions
	// the Reader reads past without publishing them: after a failover, the
	// transactions already published from the server failed over from.
	// Empty skips nothing.
	SkipGTIDs string
	// SkipTxRows, when its GTID is set, skips the first Rows row changes
	// of that transaction: the part of the transaction the broker already
	// holds from before a failover (the rest is published).
	SkipTxRows TxRows
	// ResumeByGTID asks the server for the binlog by the start position's
	// GTID state instead of its file and offset (MySQL's
	// COM_BINLOG_DUMP_GTID, MariaDB's slave_connect_state): the first
	// pass after a failover, where the server itself leaves out what the
	// state holds. The position's file and offset then only name where
	// the stream is expected to begin.
	ResumeByGTID bool
	// session are statements run on every (re)connection of a Source.
	session []string
}

func (c *Config) addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
}

// DefaultEventBuffer is Config.EventBuffer's default.
const DefaultEventBuffer = 16

// adminQueryTimeout bounds each read and write of an administrative query.
const adminQueryTimeout = 30 * time.Second

// Source is an administrative connection to the server: flavor, positions,
// binlog inventory and table metadata.
type Source struct {
	// cfg is the configuration of the server connected to last;
	// configured the one Connect was given.
	cfg, configured Config
	log             logrus.FieldLogger
	conn            *client.Conn
	flavor          string
	version         string
	serverID        uint32
	collations      map[uint64]string
	tls             *tls.ConnectionState
	// eventsPage is how many events a SHOW BINLOG EVENTS page holds; 0
	// means the package's eventsPage (tests make it small).
	eventsPage int
}

// Connect opens the administrative connection (encrypted with cfg.TLS, see
// TLSMode) and detects the flavor. Wrong credentials are a permanent error
// naming the user and address; so are a server without TLS when the mode
// requires it, a server certificate that is not accepted, a server that
// requires TLS when none is configured, and a server asking for the password
// in clear text over an unencrypted connection (ErrClearTextPassword: the
// password is never sent). An unreachable server is a plain error naming
// the address. All carry a fix (failure.Fix).
func Connect(ctx context.Context, cfg Config, log logrus.FieldLogger) (*Source, error) {
	s := &Source{cfg: cfg, log: log, configured: cfg}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// connect connects to the server connected to last (at first Host:Port),
// else to Host:Port and the Alternates in order, and reads the server's
// identity. When none answers, the first server's error is returned.
func (s *Source) connect(ctx context.Context) error {
	var firstErr error
	for i, cfg := range s.candidates() {
		err := s.connectTo(ctx, cfg)
		if err == nil {
			if i > 0 {
				s.log.WithFields(logrus.Fields{"addr": cfg.addr(), "previous": s.cfg.addr()}).
					Warn("the source server did not answer; connected to another server of the replication topology (Mysql.Hosts)")
			}
			s.cfg = cfg
			return nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return firstErr
}

// candidates are the configurations to connect with, in order: the
// server connected to last, then Host:Port and the Alternates (each once).
// A TLS server name taken from Host follows the host.
func (s *Source) candidates() []Config {
	out := []Config{s.cfg}
	seen := map[string]bool{s.cfg.addr(): true}
	addrs := append([]string{s.configured.addr()}, s.configured.Alternates...)
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil || seen[a] {
			continue
		}
		seen[a] = true
		cfg := s.configured
		cfg.Host, cfg.Port = host, uint16(n)
		if cfg.TLS != nil && cfg.TLS.ServerName == s.configured.Host {
			cfg.TLS = cfg.TLS.Clone()
			cfg.TLS.ServerName = host
		}
		out = append(out, cfg)
	}
	return out
}

// connectTo opens the administrative connection with cfg and reads the
// server's version, flavor and server_id.
func (s *Source) connectTo(ctx context.Context, cfg Config) error {
	conn, err := cfg.connectClient(ctx, s.log, func(c *client.Conn) error {
		// A server that stops answering must not hang a query (and with it
		// a graceful stop) forever.
		c.ReadTimeout, c.WriteTimeout = adminQueryTimeout, adminQueryTimeout
		if s.cfg.Charset != "" {
			if err := c.SetCharset(s.cfg.Charset); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if failure.IsPermanent(err) {
			return err
		}
		if err2 := cfg.classify(err); err2 != err {
			return err2
		}
		return failure.WithFix(fmt.Errorf("connect to MySQL at %s as %q: %w", cfg.addr(), cfg.User, err),
			"check that the server is up and reachable at that address")
	}
	for _, q := range cfg.session {
		if _, err := conn.Execute(q); err != nil {
			conn.Close()
			return fmt.Errorf("MySQL at %s: %s: %w", cfg.addr(), q, err)
		}
	}
	if err := s.identify(conn, cfg); err != nil {
		conn.Close()
		return err
	}
	s.conn = conn
	s.tls = tlsState(conn)
	return nil
}

// identify reads the server's version, flavor (unless configured) and
// server_id on conn, logging them when the server is another than before.
func (s *Source) identify(conn *client.Conn, cfg Config) error {
	r, err := conn.Execute("SELECT VERSION(), @@server_id")
	if err != nil {
		return fmt.Errorf("MySQL at %s: SELECT VERSION(), @@server_id: %w", cfg.addr(), cfg.classify(err))
	}
	version, _ := r.GetString(0, 0)
	sid, _ := r.GetUint(0, 1)
	flavor := cfg.Flavor
	if flavor == "" {
		flavor = mysql.MySQLFlavor
		if strings.Contains(strings.ToLower(version), "mariadb") {
			flavor = mysql.MariaDBFlavor
		}
	}
	if s.version != "" && uint32(sid) == s.serverID && cfg.addr() == s.cfg.addr() {
		return nil // reconnected to the same server
	}
	s.version, s.flavor, s.serverID = version, flavor, uint32(sid)
	s.log.WithFields(tlsFields(tlsState(conn))).WithFields(logrus.Fields{"addr": cfg.addr(), "version": version, "flavor": flavor, "server_id": sid}).Info("connected to source")
	return nil
}

// Endpoint is the host and port of the server connected to last.
func (s *Source) Endpoint() (string, uint16) { return s.cfg.Host, s.cfg.Port }

// TLS is the TLS state of the administrative connection as last opened:
// protocol version, cipher and the server's certificates; nil when it is
// not encrypted.
func (s *Source) TLS() *tls.ConnectionState { return s.tls }

// Flavor is "mysql" or "mariadb".
func (s *Source) Flavor() string { return s.flavor }

// ServerID is the source server's own server_id.
func (s *Source) ServerID() uint32 { return s.serverID }

// Version is the server's VERSION(), as read by Connect.
func (s *Source) Version() string { return s.version }

// Addr is the server's "host:port", as configured.
func (s *Source) Addr() string { return s.cfg.addr() }

// Close closes the connection.
func (s *Source) Close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// execute runs a query, reconnecting once if the connection broke. ctx
// bounds it: when ctx is done the query is interrupted (its connection is
// dropped, the next query connects anew) and the error wraps ctx.Err().
func (s *Source) execute(ctx context.Context, query string, args ...any) (*mysql.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("MySQL at %s: %s: %w", s.cfg.addr(), query, err)
	}
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return nil, err
		}
	}
	r, err := s.executeOnce(ctx, query, args)
	if err != nil && ctx.Err() == nil && (mysql.ErrorEqual(err, mysql.ErrBadConn) || isNetErr(err)) {
		s.Close()
		if err := s.connect(ctx); err != nil {
			return nil, err
		}
		r, err = s.executeOnce(ctx, query, args)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			s.Close() // interrupted mid-query: the connection's state is unknown
			return nil, fmt.Errorf("MySQL at %s: %s: %w", s.cfg.addr(), query, ctxErr)
		}
		return nil, fmt.Errorf("MySQL at %s: %s: %w", s.cfg.addr(), query, s.cfg.classify(err))
	}
	return r, nil
}

// executeOnce runs query on the current connection, interrupting it when
// ctx is done.
func (s *Source) executeOnce(ctx context.Context, query string, args []any) (*mysql.Result, error) {
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	return conn.Execute(query, args...)
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection")
}

func (s *Source) queryString(ctx context.Context, query string) (string, error) {
	r, err := s.execute(ctx, query)
	if err != nil {
		return "", err
	}
	if r.RowNumber() == 0 {
		return "", fmt.Errorf("MySQL at %s: %s returned no row", s.cfg.addr(), query)
	}
	return r.GetString(0, 0)
}
