package binlog

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
)

// MySQL server error codes dbsync classifies.
const (
	errAccessDenied      = 1045 // ER_ACCESS_DENIED_ERROR
	errAccessNoPassword  = 1698 // ER_ACCESS_DENIED_NO_PASSWORD_ERROR (e.g. a unix_socket-only account over TCP)
	errDBAccessDenied    = 1044 // ER_DBACCESS_DENIED_ERROR
	errSpecificAccess    = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
	errMasterFatalBinlog = 1236 // ER_MASTER_FATAL_ERROR_READING_BINLOG
)

// IsRefusedLogin reports whether err is the server's refusal of the
// account: wrong user or password (1045), an account that cannot log in
// with a password (1698, e.g. unix_socket authentication only), or no access
// to the database (1044).
func IsRefusedLogin(err error) bool {
	var me *mysql.MyError
	return errors.As(err, &me) && (me.Code == errAccessDenied || me.Code == errAccessNoPassword || me.Code == errDBAccessDenied)
}

// classify marks server errors that retrying cannot fix permanent, with
// their fix (failure.Fix).
func (c *Config) classify(err error) error {
	var me *mysql.MyError
	if !errors.As(err, &me) {
		return err
	}
	switch me.Code {
	case errAccessDenied, errAccessNoPassword, errDBAccessDenied:
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s refused user %q: %w", c.addr(), c.User, err)),
			"check the user name and password dbsync connects with")
	case errSpecificAccess:
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL user %q at %s lacks a privilege: %w", c.User, c.addr(), err)),
			"GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO the user")
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
// replication) is a permanent error saying so.
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
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s does not stream its binlog: it answered the replica's binlog dump request (COM_BINLOG_DUMP) "+
			"with %w; dbsync reads the binlog as a replica does", c.addr(), err)),
			"connect to the MySQL or MariaDB server itself, not to a proxy or a service without replication support")
	}
	return c.classify(err)
}

// missingFunction marks the error of a query that calls fn permanent when
// the server lacks fn (or cannot parse the call).
func (c *Config) missingFunction(err error, fn, purpose string) error {
	var me *mysql.MyError
	if errors.As(err, &me) && (me.Code == errFunctionMissing || me.Code == errFunctionNotFound ||
		me.Code == errParse || me.Code == errUnknownCommand || me.Code == errNotSupportedYet) {
		return failure.WithFix(failure.Permanent(fmt.Errorf("MySQL at %s lacks the function %s, which dbsync needs %s: %w", c.addr(), fn, purpose, err)),
			"connect to a MySQL 5.7+ or MariaDB 10.5+ server itself, not to a proxy that filters it")
	}
	return err
}

// PurgedError reports a checkpoint whose binlog the server no longer has.
type PurgedError struct {
	Pos    position.Position
	Oldest string
	Addr   string
}

func (e *PurgedError) Error() string {
	return fmt.Sprintf("checkpoint %s is not on MySQL at %s any more: the oldest binlog the server still has is %s; "+
		"the changes in between are lost to dbsync", e.Pos, e.Addr, e.Oldest)
}

// Fix implements failure.Fixer.
func (e *PurgedError) Fix() string {
	return fmt.Sprintf("re-sync the consumers from a snapshot and then delete the checkpoint (dbsync starts at the current position) "+
		"or set it to %s:4; raise binlog_expire_logs_seconds so this does not happen again", e.Oldest)
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
	return fmt.Sprintf("checkpoint %s does not belong to the binlog history of MySQL at %s: %s (the server's GTID state there is %q); "+
		"the binlog was reset (RESET MASTER) or this is another server, and dbsync will not resume at a look-alike position",
		e.Pos, e.Addr, e.Reason, e.ServerGTID)
}

// Fix implements failure.Fixer.
func (e *HistoryError) Fix() string {
	return "re-sync the consumers from a snapshot, then reset the checkpoint (producer checkpoint reset)"
}
