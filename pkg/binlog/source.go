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

// Config says how to reach the source server and how to pose as its replica.
type Config struct {
	Host     string
	Port     uint16
	User     string
	Password string
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
	cfg        Config
	log        logrus.FieldLogger
	conn       *client.Conn
	flavor     string
	version    string
	serverID   uint32
	collations map[uint64]string
	tls        *tls.ConnectionState
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
	s := &Source{cfg: cfg, log: log}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	version, err := s.queryString(ctx, "SELECT VERSION()")
	if err != nil {
		s.Close()
		return nil, err
	}
	s.version = version
	s.flavor = cfg.Flavor
	if s.flavor == "" {
		s.flavor = mysql.MySQLFlavor
		if strings.Contains(strings.ToLower(version), "mariadb") {
			s.flavor = mysql.MariaDBFlavor
		}
	}
	id, err := s.queryString(ctx, "SELECT @@server_id")
	if err != nil {
		s.Close()
		return nil, err
	}
	sid, _ := strconv.ParseUint(id, 10, 32)
	s.serverID = uint32(sid)
	log.WithFields(tlsFields(s.tls)).WithFields(logrus.Fields{"addr": cfg.addr(), "version": version, "flavor": s.flavor, "server_id": sid}).Info("connected to source")
	return s, nil
}

func (s *Source) connect(ctx context.Context) error {
	conn, err := s.cfg.connectClient(ctx, s.log, func(c *client.Conn) error {
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
		if err2 := s.cfg.classify(err); err2 != err {
			return err2
		}
		return failure.WithFix(fmt.Errorf("connect to MySQL at %s as %q: %w", s.cfg.addr(), s.cfg.User, err),
			"check that the server is up and reachable at that address")
	}
	for _, q := range s.cfg.session {
		if _, err := conn.Execute(q); err != nil {
			conn.Close()
			return fmt.Errorf("MySQL at %s: %s: %w", s.cfg.addr(), q, err)
		}
	}
	s.conn = conn
	s.tls = tlsState(conn)
	return nil
}

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
