package binlog

import (
	"context"
	"encoding/binary"
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
	"github.com/dbsync/dbsync/pkg/position"
)

// Config says how to reach the source server and how to pose as its replica.
type Config struct {
	Host     string
	Port     uint16
	User     string
	Password string
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
}

func (c *Config) addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
}

// DefaultEventBuffer is Config.EventBuffer's default.
const DefaultEventBuffer = 16

// MySQL server error codes dbsync classifies.
const (
	errAccessDenied      = 1045 // ER_ACCESS_DENIED_ERROR
	errDBAccessDenied    = 1044 // ER_DBACCESS_DENIED_ERROR
	errSpecificAccess    = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
	errMasterFatalBinlog = 1236 // ER_MASTER_FATAL_ERROR_READING_BINLOG
)

// classify marks server errors that retrying cannot fix permanent, with
// the fix in the message.
func (c *Config) classify(err error) error {
	var me *mysql.MyError
	if !errors.As(err, &me) {
		return err
	}
	switch me.Code {
	case errAccessDenied, errDBAccessDenied:
		return failure.Permanent(fmt.Errorf("MySQL at %s refused user %q: %w (check Mysql.Username and Mysql.Password, or DBSYNC_MYSQL_PASSWORD)", c.addr(), c.User, err))
	case errSpecificAccess:
		return failure.Permanent(fmt.Errorf("MySQL user %q at %s lacks a privilege: %w (GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO the user)", c.User, c.addr(), err))
	case errMasterFatalBinlog:
		return failure.Permanent(fmt.Errorf("MySQL at %s stopped sending the binlog (the server's reason follows; a purged binlog, a different binlog history, or another replica using server_id %d): %w", c.addr(), c.ServerID, err))
	}
	return err
}

// MySQL server error codes of a server (or a proxy in front of one) that
// does not implement a command or function dbsync needs.
const (
	errUnknownCommand   = 1047 // ER_UNKNOWN_COM_ERROR
	errNotSupportedYet  = 1235 // ER_NOT_SUPPORTED_YET
	errUnknownError     = 1105 // ER_UNKNOWN_ERROR (proxies answer unknown commands with it)
	errFunctionMissing  = 1305 // ER_SP_DOES_NOT_EXIST ("FUNCTION x does not exist")
	errFunctionNotFound = 1128 // ER_FUNCTION_NOT_DEFINED
	errParse            = 1064 // ER_PARSE_ERROR
)

// classifyDump is classify for the answer to the binlog dump request: a
// server that does not implement it (a proxy, a server without
// replication) is a FatalError saying so.
func (c *Config) classifyDump(err error) error {
	var me *mysql.MyError
	if !errors.As(err, &me) {
		return err
	}
	notImplemented := me.Code == errUnknownCommand || me.Code == errNotSupportedYet
	if me.Code == errUnknownError {
		msg := strings.ToLower(me.Message)
		notImplemented = strings.Contains(msg, "not implemented") || strings.Contains(msg, "not supported") || strings.Contains(msg, "unknown command")
	}
	if notImplemented {
		return failure.Permanent(fmt.Errorf("MySQL at %s does not stream its binlog: it answered the replica's binlog dump request (COM_BINLOG_DUMP) "+
			"with %w. dbsync reads the binlog as a replica does: point Mysql.Host at the MySQL or MariaDB server itself, not at a proxy "+
			"or a service without replication support", c.addr(), err))
	}
	return c.classify(err)
}

// missingFunction wraps the error of a query that calls fn in a FatalError
// when the server lacks fn (or cannot parse the call).
func (c *Config) missingFunction(err error, fn, purpose string) error {
	var me *mysql.MyError
	if errors.As(err, &me) && (me.Code == errFunctionMissing || me.Code == errFunctionNotFound ||
		me.Code == errParse || me.Code == errUnknownCommand || me.Code == errNotSupportedYet) {
		return failure.Permanent(fmt.Errorf("MySQL at %s lacks the function %s, which dbsync needs %s: %w. "+
			"Point Mysql.Host at a MySQL 5.7+ or MariaDB 10.5+ server itself, not at a proxy that filters it", c.addr(), fn, purpose, err))
	}
	return err
}

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
}

// Connect opens the administrative connection and detects the flavor. Wrong
// credentials are a FatalError naming the user and address; an unreachable
// server is a plain error naming the address.
func Connect(ctx context.Context, cfg Config, log logrus.FieldLogger) (*Source, error) {
	s := &Source{cfg: cfg, log: log}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	version, err := s.queryString("SELECT VERSION()")
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
	id, err := s.queryString("SELECT @@server_id")
	if err != nil {
		s.Close()
		return nil, err
	}
	sid, _ := strconv.ParseUint(id, 10, 32)
	s.serverID = uint32(sid)
	log.WithFields(logrus.Fields{"addr": cfg.addr(), "version": version, "flavor": s.flavor, "server_id": sid}).Info("connected to source")
	return s, nil
}

func (s *Source) connect(ctx context.Context) error {
	timeout := s.cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	conn, err := client.ConnectWithContext(ctx, s.cfg.addr(), s.cfg.User, s.cfg.Password, "", timeout, func(c *client.Conn) error {
		// A server that stops answering must not hang a query (and with it
		// a graceful stop) forever.
		c.ReadTimeout, c.WriteTimeout = adminQueryTimeout, adminQueryTimeout
		if s.cfg.Charset != "" {
			return c.SetCharset(s.cfg.Charset)
		}
		return nil
	})
	if err != nil {
		if err2 := s.cfg.classify(err); err2 != err {
			return err2
		}
		return fmt.Errorf("connect to MySQL at %s as %q: %w (is Mysql.Host/Mysql.Port right and the server up?)", s.cfg.addr(), s.cfg.User, err)
	}
	s.conn = conn
	return nil
}

// Flavor is "mysql" or "mariadb".
func (s *Source) Flavor() string { return s.flavor }

// ServerID is the source server's own server_id.
func (s *Source) ServerID() uint32 { return s.serverID }

// Version is the server's VERSION(), as read by Connect.
func (s *Source) Version() string { return s.version }

// Addr is the server's "host:port", as configured.
func (s *Source) Addr() string { return s.cfg.addr() }

// CurrentUser returns the account the server authenticated the connection
// as (CURRENT_USER(), split at its last '@'): the account GRANT statements
// must name. It fails when the query fails.
func (s *Source) CurrentUser() (user, host string, err error) {
	v, err := s.queryString("SELECT CURRENT_USER()")
	if err != nil {
		return "", "", err
	}
	i := strings.LastIndexByte(v, '@')
	if i < 0 {
		return v, "", nil
	}
	return v[:i], v[i+1:], nil
}

// Grants returns the lines of SHOW GRANTS FOR CURRENT_USER(), as the server
// prints them (one GRANT statement each). It fails when the query fails.
func (s *Source) Grants() ([]string, error) {
	r, err := s.execute("SHOW GRANTS FOR CURRENT_USER()")
	if err != nil {
		return nil, err
	}
	grants := make([]string, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		g, _ := r.GetString(i, 0)
		grants = append(grants, g)
	}
	return grants, nil
}

// ReplicaHost is one replica registered with the server.
type ReplicaHost struct {
	// ServerID is the server_id the replica registered with.
	ServerID uint32
	// Host is the host name the replica reported ("" when it sent none).
	Host string
	Port uint32
}

// ReplicaHosts lists the replicas currently registered with the server
// (SHOW SLAVE HOSTS; SHOW REPLICAS on MySQL servers that dropped the old
// name). The statement needs REPLICATION SLAVE on MySQL and REPLICATION
// MASTER ADMIN on MariaDB 10.5.2+; without it the error wraps the server's
// access-denied error (*mysql.MyError, code 1227).
func (s *Source) ReplicaHosts() ([]ReplicaHost, error) {
	r, err := s.execute("SHOW SLAVE HOSTS")
	if err != nil && s.flavor == mysql.MySQLFlavor {
		var me *mysql.MyError
		if !errors.As(err, &me) || me.Code != errSpecificAccess {
			r, err = s.execute("SHOW REPLICAS")
		}
	}
	if err != nil {
		return nil, err
	}
	col := func(name string) int {
		for n, i := range r.FieldNames {
			if strings.EqualFold(n, name) {
				return i
			}
		}
		return -1
	}
	idCol, hostCol, portCol := col("Server_id"), col("Host"), col("Port")
	if idCol < 0 {
		return nil, fmt.Errorf("MySQL at %s: SHOW SLAVE HOSTS has no Server_id column", s.cfg.addr())
	}
	hosts := make([]ReplicaHost, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		var h ReplicaHost
		id, _ := r.GetUint(i, idCol)
		h.ServerID = uint32(id)
		if hostCol >= 0 {
			h.Host, _ = r.GetString(i, hostCol)
		}
		if portCol >= 0 {
			port, _ := r.GetUint(i, portCol)
			h.Port = uint32(port)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// DumpThread is a connection streaming the binlog to a replica.
type DumpThread struct {
	ID   uint64
	User string
	Host string
}

// BinlogDumps lists the binlog dump threads (replica connections) the
// connected user can see in information_schema.PROCESSLIST: its own, or
// every one with the PROCESS privilege. It fails when the query fails.
func (s *Source) BinlogDumps() ([]DumpThread, error) {
	r, err := s.execute("SELECT ID, USER, HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
	if err != nil {
		return nil, err
	}
	threads := make([]DumpThread, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		var d DumpThread
		d.ID, _ = r.GetUint(i, 0)
		d.User, _ = r.GetString(i, 1)
		d.Host, _ = r.GetString(i, 2)
		threads = append(threads, d)
	}
	return threads, nil
}

// Close closes the connection.
func (s *Source) Close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// execute runs a query, reconnecting once if the connection broke.
func (s *Source) execute(query string, args ...any) (*mysql.Result, error) {
	if s.conn == nil {
		if err := s.connect(context.Background()); err != nil {
			return nil, err
		}
	}
	r, err := s.conn.Execute(query, args...)
	if err != nil && mysql.ErrorEqual(err, mysql.ErrBadConn) || err != nil && isNetErr(err) {
		s.Close()
		if err := s.connect(context.Background()); err != nil {
			return nil, err
		}
		r, err = s.conn.Execute(query, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("MySQL at %s: %s: %w", s.cfg.addr(), query, s.cfg.classify(err))
	}
	return r, nil
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection")
}

func (s *Source) queryString(query string) (string, error) {
	r, err := s.execute(query)
	if err != nil {
		return "", err
	}
	if r.RowNumber() == 0 {
		return "", fmt.Errorf("MySQL at %s: %s returned no row", s.cfg.addr(), query)
	}
	return r.GetString(0, 0)
}

// Variable returns a global server variable's value.
func (s *Source) Variable(name string) (string, error) {
	r, err := s.execute("SHOW GLOBAL VARIABLES LIKE '" + strings.ReplaceAll(name, "'", "") + "'")
	if err != nil {
		return "", err
	}
	if r.RowNumber() == 0 {
		return "", nil
	}
	return r.GetString(0, 1)
}

// BinlogFile is one entry of SHOW BINARY LOGS.
type BinlogFile struct {
	Name string
	Size uint64
}

// BinaryLogs lists the binlog files the server still has, oldest first.
func (s *Source) BinaryLogs() ([]BinlogFile, error) {
	r, err := s.execute("SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	files := make([]BinlogFile, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		name, _ := r.GetString(i, 0)
		size, _ := r.GetUint(i, 1)
		files = append(files, BinlogFile{Name: name, Size: size})
	}
	return files, nil
}

// CurrentPosition is where the server's binlog ends now.
func (s *Source) CurrentPosition() (position.Position, error) {
	r, err := s.execute("SHOW MASTER STATUS")
	if err != nil && s.flavor == mysql.MySQLFlavor {
		// MySQL 8.4 renamed it.
		r, err = s.execute("SHOW BINARY LOG STATUS")
	}
	if err != nil {
		return position.Position{}, err
	}
	if r.RowNumber() == 0 {
		return position.Position{}, failure.Permanent(fmt.Errorf("MySQL at %s has binary logging off (SHOW MASTER STATUS is empty): start it with log_bin=ON and binlog_format=ROW", s.cfg.addr()))
	}
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetUint(0, 1)
	p := position.Position{File: file, Pos: uint32(pos)}
	if s.flavor == mysql.MariaDBFlavor {
		p.GTID, _ = s.queryString("SELECT @@gtid_binlog_pos")
	} else if gtid, err := r.GetString(0, 4); err == nil {
		p.GTID = strings.ReplaceAll(gtid, "\n", "")
	}
	return p, nil
}

// OldestPosition is the start of the oldest binlog the server still has.
func (s *Source) OldestPosition() (position.Position, error) {
	files, err := s.BinaryLogs()
	if err != nil {
		return position.Position{}, err
	}
	if len(files) == 0 {
		return position.Position{}, failure.Permanent(fmt.Errorf("MySQL at %s lists no binary logs: start it with log_bin=ON", s.cfg.addr()))
	}
	return position.Position{File: files[0].Name, Pos: 4}, nil
}

// BytesBetween returns how many binlog bytes lie from a to b (0 when b is
// not after a), using the file sizes of SHOW BINARY LOGS.
func (s *Source) BytesBetween(a, b position.Position) (int64, error) {
	if b.Compare(a) <= 0 {
		return 0, nil
	}
	if a.File == b.File {
		return int64(b.Pos) - int64(a.Pos), nil
	}
	files, err := s.BinaryLogs()
	if err != nil {
		return 0, err
	}
	var total int64
	counting := false
	for _, f := range files {
		switch {
		case f.Name == a.File:
			counting = true
			total += int64(f.Size) - int64(a.Pos)
		case f.Name == b.File:
			return total + int64(b.Pos), nil
		case counting:
			total += int64(f.Size)
		}
	}
	if !counting {
		return 0, fmt.Errorf("binlog %s is not on the server any more", a.File)
	}
	return total, nil
}

// PurgedError reports a checkpoint whose binlog the server no longer has.
type PurgedError struct {
	Pos    position.Position
	Oldest string
	Addr   string
}

func (e *PurgedError) Error() string {
	return fmt.Sprintf("checkpoint %s is not on MySQL at %s any more: the oldest binlog the server still has is %s. "+
		"The changes in between are lost to dbsync; to go on, re-sync the consumers from a snapshot and then delete "+
		"the checkpoint (dbsync starts at the current position) or set it to %s:4. Raise binlog_expire_logs_seconds "+
		"so this does not happen again", e.Pos, e.Addr, e.Oldest, e.Oldest)
}

// CheckResumable verifies that the server still has pos: its file is listed
// by SHOW BINARY LOGS and pos is not beyond the file's end (which would mean
// a different binlog history, e.g. after RESET MASTER). Failures are fatal.
func (s *Source) CheckResumable(pos position.Position) error {
	if err := pos.Validate(); err != nil {
		return failure.Permanent(fmt.Errorf("checkpoint %s: %w", pos, err))
	}
	files, err := s.BinaryLogs()
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return failure.Permanent(fmt.Errorf("MySQL at %s lists no binary logs: start it with log_bin=ON", s.cfg.addr()))
	}
	for _, f := range files {
		if f.Name == pos.File {
			if uint64(pos.Pos) > f.Size {
				return failure.Permanent(fmt.Errorf("checkpoint %s is beyond the end of %s (%d bytes) on MySQL at %s: "+
					"the server's binlog history differs from the one the checkpoint was taken on (RESET MASTER, or another server). "+
					"Re-sync the consumers and reset the checkpoint", pos, f.Name, f.Size, s.cfg.addr()))
			}
			return s.checkHistory(pos)
		}
	}
	return failure.Permanent(&PurgedError{Pos: pos, Oldest: files[0].Name, Addr: s.cfg.addr()})
}

// HistoryError reports a checkpoint whose position exists on the server but
// belongs to another binlog history: after RESET MASTER the same file names
// and offsets come back holding other transactions.
type HistoryError struct {
	Pos          position.Position
	ServerGTID   string
	Addr, Reason string
}

func (e *HistoryError) Error() string {
	return fmt.Sprintf("checkpoint %s does not belong to the binlog history of MySQL at %s: %s (the server's GTID state there is %q). "+
		"The binlog was reset (RESET MASTER) or this is another server; dbsync will not resume at a look-alike position. "+
		"Re-sync the consumers from a snapshot, then reset the checkpoint (producer checkpoint reset)",
		e.Pos, e.Addr, e.Reason, e.ServerGTID)
}

// checkHistory verifies, when the checkpoint carries a GTID, that the
// server's binlog at pos is the history the checkpoint was taken on:
// MariaDB's BINLOG_GTID_POS(file, pos) must hold the checkpoint's GTIDs;
// on MySQL the GTIDs must be in gtid_executed.
func (s *Source) checkHistory(pos position.Position) error {
	if pos.GTID == "" {
		return nil
	}
	if s.flavor != mysql.MariaDBFlavor {
		r, err := s.execute("SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed)", pos.GTID)
		if err != nil {
			return s.cfg.missingFunction(err, "GTID_SUBSET()", "to verify that the checkpoint belongs to the server's binlog history")
		}
		if ok, _ := r.GetInt(0, 0); ok != 1 {
			return failure.Permanent(&HistoryError{Pos: pos, Addr: s.cfg.addr(), Reason: "its GTIDs are not in the server's gtid_executed"})
		}
		return nil
	}
	r, err := s.execute("SELECT BINLOG_GTID_POS(?, ?)", pos.File, pos.Pos)
	if err != nil {
		return s.cfg.missingFunction(err, "BINLOG_GTID_POS()", "to verify that the checkpoint belongs to the server's binlog history")
	}
	state, _ := r.GetString(0, 0)
	if r.RowNumber() == 0 || state == "" && pos.Pos > 4 {
		return failure.Permanent(&HistoryError{Pos: pos, Addr: s.cfg.addr(), Reason: "the position is not an event boundary there"})
	}
	have := map[string]string{} // domain -> "domain-server-seq"
	for _, g := range strings.Split(state, ",") {
		if g = strings.TrimSpace(g); g != "" {
			domain, _, _ := strings.Cut(g, "-")
			have[domain] = g
		}
	}
	for _, g := range strings.Split(pos.GTID, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		domain, _, _ := strings.Cut(g, "-")
		if have[domain] != g {
			return failure.Permanent(&HistoryError{Pos: pos, ServerGTID: state, Addr: s.cfg.addr(),
				Reason: fmt.Sprintf("the checkpoint says the last transaction before it was %s", g)})
		}
	}
	return nil
}

// ProbeDump asks the server to stream its binlog from its current position,
// the way a replica does, and returns nil once it accepts (its first event
// arrives). It connects separately, as server_id 0 with the non-blocking
// flag, like mysqlbinlog: it registers no replica and disturbs none. A
// server (or proxy) that refuses the request is a FatalError saying so.
func (s *Source) ProbeDump(ctx context.Context) error {
	pos, err := s.CurrentPosition()
	if err != nil {
		return err
	}
	probe := &Source{cfg: s.cfg, log: s.log}
	if err := probe.connect(ctx); err != nil {
		return err
	}
	defer probe.Close()
	c := probe.conn
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Execute("SET @master_binlog_checksum='NONE', @source_binlog_checksum='NONE'"); err != nil {
		return fmt.Errorf("MySQL at %s: prepare a binlog dump: %w", s.cfg.addr(), s.cfg.classify(err))
	}
	if s.flavor == mysql.MariaDBFlavor {
		if _, err := c.Execute("SET @mariadb_slave_capability=4"); err != nil {
			return fmt.Errorf("MySQL at %s: prepare a binlog dump: %w", s.cfg.addr(), s.cfg.classify(err))
		}
	}
	const dumpNonBlock = 0x01
	c.ResetSequence()
	data := make([]byte, 4+1+4+2+4+len(pos.File))
	data[4] = mysql.COM_BINLOG_DUMP
	binary.LittleEndian.PutUint32(data[5:], pos.Pos)
	binary.LittleEndian.PutUint16(data[9:], dumpNonBlock)
	binary.LittleEndian.PutUint32(data[11:], 0)
	copy(data[15:], pos.File)
	if err := c.WritePacket(data); err != nil {
		return fmt.Errorf("MySQL at %s: send a binlog dump request: %w", s.cfg.addr(), err)
	}
	reply, err := c.ReadPacket()
	if err != nil {
		return fmt.Errorf("MySQL at %s: read the answer to a binlog dump request: %w", s.cfg.addr(), err)
	}
	switch reply[0] {
	case mysql.OK_HEADER, mysql.EOF_HEADER:
		return nil
	case mysql.ERR_HEADER:
		return s.cfg.classifyDump(fmt.Errorf("binlog dump at %s: %w", pos, c.HandleErrorPacket(reply)))
	}
	return fmt.Errorf("MySQL at %s answered a binlog dump request with an unexpected packet (0x%02x)", s.cfg.addr(), reply[0])
}

// HoldsPosition reports whether the server's binlog has pos (a published
// change's coordinate) with pos.GTID as the GTID state there: the change
// belongs to the server's current binlog history. Only MariaDB can tell
// (BINLOG_GTID_POS is exact per position; MySQL's gtid_executed holds the
// GTIDs of a promoted replica too, whose positions differ); elsewhere, and
// without a GTID, it reports false.
func (s *Source) HoldsPosition(pos position.Position) bool {
	if pos.GTID == "" || s.flavor != mysql.MariaDBFlavor {
		return false
	}
	return s.CheckResumable(pos) == nil
}

// tableInfo reads a table's current definition from information_schema. A
// table that no longer exists yields nil and no error.
func (s *Source) tableInfo(db, name string) (*infoTable, error) {
	r, err := s.execute(`SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IFNULL(CHARACTER_SET_NAME, ''), COLUMN_KEY
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, name)
	if err != nil {
		return nil, err
	}
	if r.RowNumber() == 0 {
		return nil, nil
	}
	it := &infoTable{}
	for i := 0; i < r.RowNumber(); i++ {
		var c infoColumn
		c.name, _ = r.GetString(i, 0)
		c.dataType, _ = r.GetString(i, 1)
		c.columnType, _ = r.GetString(i, 2)
		c.charset, _ = r.GetString(i, 3)
		c.json = strings.EqualFold(c.dataType, "json")
		it.columns = append(it.columns, c)
	}
	r, err = s.execute(`SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, db, name)
	if err != nil {
		return nil, err
	}
	for i := 0; i < r.RowNumber(); i++ {
		k, _ := r.GetString(i, 0)
		it.pk = append(it.pk, k)
	}
	if s.flavor == mysql.MariaDBFlavor {
		// MariaDB's JSON is LONGTEXT with a json_valid(`col`) check.
		r, err = s.execute(`SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
			WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, db, name)
		if err != nil {
			return nil, err
		}
		for i := 0; i < r.RowNumber(); i++ {
			clause, _ := r.GetString(i, 0)
			if col, ok := jsonValidColumn(clause); ok {
				if c := it.column(col); c != nil {
					c.json = true
				}
			}
		}
	}
	return it, nil
}

// jsonValidColumn recognises MariaDB's "json_valid(`col`)" check clause.
func jsonValidColumn(clause string) (string, bool) {
	c := strings.TrimSpace(clause)
	if !strings.HasPrefix(strings.ToLower(c), "json_valid(`") || !strings.HasSuffix(c, "`)") {
		return "", false
	}
	return strings.ReplaceAll(c[len("json_valid(`"):len(c)-2], "``", "`"), true
}

// collationCharsets maps collation ids to character set names.
func (s *Source) collationCharsets() (map[uint64]string, error) {
	if s.collations != nil {
		return s.collations, nil
	}
	r, err := s.execute("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
	if err != nil {
		return nil, err
	}
	m := make(map[uint64]string, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		id, _ := r.GetUint(i, 0)
		cs, _ := r.GetString(i, 1)
		m[id] = cs
	}
	m[63] = "binary"
	s.collations = m
	return m, nil
}
