// Package doctor is dbsync's preflight check: it inspects the source server,
// the broker and the checkpoint store a configuration names and reports, for
// each thing dbsync depends on, whether it is right (OK), works but loses
// something or risks data (WARN), or stops dbsync (FAIL), with the SQL
// statement or configuration change that fixes it.
//
// The checks only read: they never create the checkpoint file, a stream or a
// replica registration. Run runs them all for a config; SourceChecks runs
// the source server's checks on an open connection.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/stan.go"
	"github.com/sirupsen/logrus"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
)

// Status is a check's verdict.
type Status int

// The verdicts, from good to bad.
const (
	// OK: nothing to do.
	OK Status = iota
	// WARN: dbsync runs, but loses information or risks losing changes.
	WARN
	// FAIL: dbsync refuses to start (or would fail soon after).
	FAIL
)

// String returns "OK", "WARN" or "FAIL".
func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case WARN:
		return "WARN"
	case FAIL:
		return "FAIL"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Names of the checks (Finding.Check).
const (
	CheckSource      = "source"
	CheckLogBin      = "log_bin"
	CheckFormat      = "binlog_format"
	CheckRowImage    = "binlog_row_image"
	CheckRowMetadata = "binlog_row_metadata"
	CheckCompression = "binlog_transaction_compression"
	CheckServerID    = "server_id"
	CheckGrants      = "grants"
	CheckRetention   = "retention"
	CheckDump        = "binlog_dump"
	CheckBroker      = "broker"
	CheckCheckpoint  = "checkpoint"
)

// Finding is the result of one check.
type Finding struct {
	// Check names what was checked, one of the Check* constants.
	Check  string
	Status Status
	// Detail says what was found.
	Detail string
	// Fix is the SQL statement or configuration change that resolves a WARN
	// or FAIL; empty for OK.
	Fix string
}

// Report is the outcome of Run.
type Report struct {
	Findings []Finding
}

// Failed reports whether any finding is a FAIL.
func (r Report) Failed() bool {
	for _, f := range r.Findings {
		if f.Status == FAIL {
			return true
		}
	}
	return false
}

// Err returns nil when no finding is a FAIL, else one error listing every
// FAIL with its detail and fix, one per line.
func (r Report) Err() error {
	var b strings.Builder
	n := 0
	for _, f := range r.Findings {
		if f.Status != FAIL {
			continue
		}
		n++
		fmt.Fprintf(&b, "\n  %s: %s", f.Check, f.Detail)
		if f.Fix != "" {
			fmt.Fprintf(&b, "\n    fix: %s", f.Fix)
		}
	}
	if n == 0 {
		return nil
	}
	noun := "checks"
	if n == 1 {
		noun = "check"
	}
	return fmt.Errorf("preflight: %d %s failed:%s", n, noun, b.String())
}

// Print writes the findings as a table: status, check and detail on one
// line, the fix (if any) indented on the next, then a summary line.
func (r Report) Print(w io.Writer) {
	width := len("CHECK")
	for _, f := range r.Findings {
		width = max(width, len(f.Check))
	}
	fmt.Fprintf(w, "%-6s %-*s %s\n", "STATUS", width, "CHECK", "DETAIL")
	indent := strings.Repeat(" ", 7+width+1)
	var counts [3]int
	for _, f := range r.Findings {
		if f.Status >= OK && f.Status <= FAIL {
			counts[f.Status]++
		}
		fmt.Fprintf(w, "%-6s %-*s %s\n", f.Status, width, f.Check, f.Detail)
		if f.Fix != "" {
			fmt.Fprintf(w, "%sfix: %s\n", indent, f.Fix)
		}
	}
	fmt.Fprintf(w, "%d OK, %d WARN, %d FAIL\n", counts[OK], counts[WARN], counts[FAIL])
}

// brokerTimeout bounds each broker connection attempt.
const brokerTimeout = 5 * time.Second

// Run runs every check for cfg and never panics or returns early: the
// checkpoint store (opened and read, never created), the source server
// (connecting with cfg.Mysql; a refused or unreachable connection is a FAIL
// finding, and the server checks are then skipped) and the broker (dialled,
// nothing created). log receives the components' own log entries; nil
// discards them.
func Run(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) Report {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	var r Report
	storeFinding, checkpoint := checkStore(ctx, cfg, log)

	src, f := connectSource(ctx, cfg, log)
	r.Findings = append(r.Findings, f)
	if src != nil {
		r.Findings = append(r.Findings, SourceChecks(src, cfg.Mysql.ServerID, checkpoint)...)
		src.Close()
	}
	r.Findings = append(r.Findings, storeFinding)
	r.Findings = append(r.Findings, checkBroker(ctx, cfg, log))
	return r
}

// connectSource opens the admin connection; on failure the Source is nil
// and the finding a FAIL.
func connectSource(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (*binlog.Source, Finding) {
	addr := cfg.MysqlAddr()
	port, err := cfg.Mysql.Port.Int()
	if err != nil {
		return nil, Finding{Check: CheckSource, Status: FAIL, Detail: fmt.Sprintf("Mysql.Port %q: %v", cfg.Mysql.Port, err),
			Fix: "set Mysql.Port (or DBSYNC_MYSQL_PORT) to the server's port, e.g. 3306"}
	}
	src, err := binlog.Connect(ctx, binlog.Config{
		Host:           cfg.Mysql.Host,
		Port:           uint16(port),
		User:           cfg.Mysql.Username,
		Password:       cfg.Mysql.Password,
		ServerID:       cfg.Mysql.ServerID,
		Flavor:         cfg.Mysql.Flavor,
		Charset:        cfg.Mysql.Charset,
		ConnectTimeout: cfg.Mysql.ConnectTimeout.Duration(),
	}, log)
	if err != nil {
		fix := fmt.Sprintf("check that the server is up and reachable at %s (Mysql.Host, Mysql.Port; DBSYNC_MYSQL_HOST, DBSYNC_MYSQL_PORT)", addr)
		var me *mysql.MyError
		if errors.As(err, &me) && (me.Code == mysql.ER_ACCESS_DENIED_ERROR || me.Code == mysql.ER_DBACCESS_DENIED_ERROR) {
			fix = fmt.Sprintf("check Mysql.Username and Mysql.Password (or DBSYNC_MYSQL_USERNAME, DBSYNC_MYSQL_PASSWORD); to create the account: "+
				"CREATE USER '%s'@'%%' IDENTIFIED BY '...'; GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '%s'@'%%'",
				sqlEscape(cfg.Mysql.Username), sqlEscape(cfg.Mysql.Username))
		}
		return nil, Finding{Check: CheckSource, Status: FAIL, Detail: err.Error(), Fix: fix}
	}
	return src, Finding{Check: CheckSource, Status: OK,
		Detail: fmt.Sprintf("connected to %s as %q: %s (%s)", addr, cfg.Mysql.Username, src.Version(), src.Flavor())}
}

// SourceChecks inspects the source server through src: binary logging, its
// format, row image and metadata, transaction compression, server_id
// clashes with ourServerID (Mysql.ServerID), the connected user's grants,
// and binlog retention against checkpoint (nil when there is none; the
// retention check is left out when binary logging is off). A query that
// fails makes its check a WARN naming the error; it never stops the others.
func SourceChecks(src *binlog.Source, ourServerID uint32, checkpoint *position.Position) []Finding {
	logBin, logBinOn := checkLogBin(src)
	out := []Finding{logBin}
	out = append(out,
		checkFormat(src),
		checkRowImage(src),
		checkRowMetadata(src),
		checkCompression(src),
		checkServerID(src, ourServerID),
		checkGrants(src),
	)
	if logBinOn {
		out = append(out, checkRetention(src, checkpoint), checkDump(src))
	}
	return out
}

// checkDump verifies that the server actually streams its binlog to a
// replica connection: a proxy or a managed service may accept queries but
// not the replication protocol.
func checkDump(src *binlog.Source) Finding {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := src.ProbeDump(ctx)
	if err == nil {
		return Finding{Check: CheckDump, Status: OK, Detail: "the server streams its binlog to a replica connection"}
	}
	if failure.IsPermanent(err) {
		return Finding{Check: CheckDump, Status: FAIL, Detail: err.Error(),
			Fix: "point Mysql.Host at the MySQL or MariaDB server itself (not a proxy), and make sure the account has REPLICATION SLAVE"}
	}
	return Finding{Check: CheckDump, Status: WARN, Detail: fmt.Sprintf("could not try a binlog dump: %v", err),
		Fix: "check that the server is reachable and the account has REPLICATION SLAVE"}
}

// variable reads a global variable; a failed query becomes a WARN finding.
func variable(src *binlog.Source, check, name string) (string, *Finding) {
	v, err := src.Variable(name)
	if err != nil {
		return "", &Finding{Check: check, Status: WARN, Detail: fmt.Sprintf("cannot read %s: %v", name, err),
			Fix: "make sure the configured user can run SHOW GLOBAL VARIABLES"}
	}
	return v, nil
}

func checkLogBin(src *binlog.Source) (Finding, bool) {
	v, bad := variable(src, CheckLogBin, "log_bin")
	if bad != nil {
		return *bad, true
	}
	if !strings.EqualFold(v, "ON") && v != "1" {
		return Finding{Check: CheckLogBin, Status: FAIL,
			Detail: fmt.Sprintf("binary logging is off (log_bin=%s): there is no binlog to stream", orNone(v)),
			Fix:    "start the server with log_bin=ON (or --log-bin) in its config file and restart it"}, false
	}
	return Finding{Check: CheckLogBin, Status: OK, Detail: "ON"}, true
}

func checkFormat(src *binlog.Source) Finding {
	v, bad := variable(src, CheckFormat, "binlog_format")
	if bad != nil {
		return *bad
	}
	if !strings.EqualFold(v, "ROW") {
		return Finding{Check: CheckFormat, Status: FAIL,
			Detail: fmt.Sprintf("binlog_format is %s: dbsync needs ROW (it decodes row events, not statements)", orNone(v)),
			Fix:    "SET GLOBAL binlog_format='ROW'; and binlog_format=ROW in the server's config file (sessions opened before keep the old format)"}
	}
	return Finding{Check: CheckFormat, Status: OK, Detail: "ROW"}
}

func checkRowImage(src *binlog.Source) Finding {
	v, bad := variable(src, CheckRowImage, "binlog_row_image")
	if bad != nil {
		return *bad
	}
	switch {
	case v == "":
		// Servers before MySQL 5.6 / MariaDB 10.1 always log full rows.
		return Finding{Check: CheckRowImage, Status: OK, Detail: "variable absent: the server always logs full row images"}
	case strings.EqualFold(v, "FULL"):
		return Finding{Check: CheckRowImage, Status: OK, Detail: "FULL"}
	}
	return Finding{Check: CheckRowImage, Status: WARN,
		Detail: fmt.Sprintf("binlog_row_image is %s: row events leave out columns (unchanged ones, or BLOB/TEXT ones), so they are "+
			"missing from the messages' before/after images (envelope keys absent) and consumers see partial rows", v),
		Fix: "SET GLOBAL binlog_row_image='FULL'; and binlog_row_image=FULL in the server's config file"}
}

func checkRowMetadata(src *binlog.Source) Finding {
	v, bad := variable(src, CheckRowMetadata, "binlog_row_metadata")
	if bad != nil {
		return *bad
	}
	switch {
	case v == "":
		return Finding{Check: CheckRowMetadata, Status: WARN,
			Detail: fmt.Sprintf("the server (%s) has no binlog_row_metadata (it needs MySQL 8.0.1+ or MariaDB 10.5+): column names come from "+
				"information_schema, so a column renamed or reordered (same type) after its rows were written goes unnoticed", src.Version()),
			Fix: "upgrade the server to MySQL 8.0.1+ or MariaDB 10.5+ and set binlog_row_metadata=FULL; until then avoid renaming or reordering columns of streamed tables"}
	case strings.EqualFold(v, "FULL"):
		return Finding{Check: CheckRowMetadata, Status: OK, Detail: "FULL"}
	}
	// The server can log FULL metadata: without it, rows written before a
	// column was renamed or moved would be published under the wrong names,
	// so dbsync refuses rather than risk misaligned values.
	return Finding{Check: CheckRowMetadata, Status: FAIL,
		Detail: fmt.Sprintf("binlog_row_metadata is %s: rows do not carry their column names, which would then come from information_schema; "+
			"a column renamed or reordered (same type) after its rows were written would publish values under the wrong names", v),
		Fix: "SET GLOBAL binlog_row_metadata='FULL'; and binlog_row_metadata=FULL in the server's config file"}
}

func checkCompression(src *binlog.Source) Finding {
	v, bad := variable(src, CheckCompression, "binlog_transaction_compression")
	if bad != nil {
		return *bad
	}
	switch {
	case v == "":
		return Finding{Check: CheckCompression, Status: OK, Detail: "not available on this server (no compressed transactions)"}
	case strings.EqualFold(v, "ON") || v == "1":
		return Finding{Check: CheckCompression, Status: FAIL,
			Detail: "binlog_transaction_compression is ON: dbsync refuses compressed transactions (it does not decode them)",
			Fix:    "SET GLOBAL binlog_transaction_compression=OFF; and binlog_transaction_compression=OFF in the server's config file"}
	}
	return Finding{Check: CheckCompression, Status: OK, Detail: strings.ToUpper(v)}
}

// checkServerID compares ours with the server's own server_id and with the
// server_ids of the replicas registered with it.
func checkServerID(src *binlog.Source, ours uint32) Finding {
	if src.ServerID() == ours {
		return Finding{Check: CheckServerID, Status: FAIL,
			Detail: fmt.Sprintf("the server's own server_id is %d, the same as Mysql.ServerID: the server refuses a replica with its own id", ours),
			Fix:    fmt.Sprintf("pick another Mysql.ServerID (any unused number other than %d)", ours)}
	}
	base := fmt.Sprintf("server's server_id %d, Mysql.ServerID %d", src.ServerID(), ours)
	user, _, _ := src.CurrentUser()
	var ownDumps []binlog.DumpThread
	if dumps, err := src.BinlogDumps(); err == nil {
		for _, d := range dumps {
			if user == "" || d.User == user {
				ownDumps = append(ownDumps, d)
			}
		}
	}
	hosts, err := src.ReplicaHosts()
	if err != nil {
		var me *mysql.MyError
		if !errors.As(err, &me) || me.Code != mysql.ER_SPECIFIC_ACCESS_DENIED_ERROR {
			return Finding{Check: CheckServerID, Status: WARN,
				Detail: fmt.Sprintf("%s; cannot list the server's replicas: %v", base, err),
				Fix:    fmt.Sprintf("make sure no other replica of this server uses server_id %d", ours)}
		}
		if len(ownDumps) > 0 {
			return Finding{Check: CheckServerID, Status: WARN,
				Detail: fmt.Sprintf("%s; a binlog dump for user %q is running (%s): probably a running producer; "+
					"replicas' server_ids not checked (listing them needs REPLICATION MASTER ADMIN on MariaDB)", base, user, dumpList(ownDumps)),
				Fix: fmt.Sprintf("stop the other producer before starting this one, or give this one another Mysql.ServerID if both must run "+
					"(GRANT REPLICATION MASTER ADMIN ON *.* TO %s lets this check see replicas' server_ids)", account(src))}
		}
		return Finding{Check: CheckServerID, Status: OK,
			Detail: fmt.Sprintf("%s; other replicas' server_ids not checked (listing them needs REPLICATION MASTER ADMIN on MariaDB; "+
				"optional: GRANT REPLICATION MASTER ADMIN ON *.* TO %s)", base, account(src))}
	}
	var clash []binlog.ReplicaHost
	for _, h := range hosts {
		if h.ServerID == ours {
			clash = append(clash, h)
		}
	}
	if len(clash) == 0 {
		return Finding{Check: CheckServerID, Status: OK,
			Detail: fmt.Sprintf("%s; none of the %d registered replica(s) uses it", base, len(hosts))}
	}
	where := make([]string, 0, len(clash))
	for _, h := range clash {
		where = append(where, fmt.Sprintf("host %q port %d", h.Host, h.Port))
	}
	if len(ownDumps) > 0 {
		return Finding{Check: CheckServerID, Status: WARN,
			Detail: fmt.Sprintf("%s; a replica with our server_id is connected (%s; binlog dump for user %q: %s), probably a running producer",
				base, strings.Join(where, ", "), user, dumpList(ownDumps)),
			Fix: "stop the other producer before starting this one; if it is not a dbsync producer, pick another Mysql.ServerID"}
	}
	return Finding{Check: CheckServerID, Status: FAIL,
		Detail: fmt.Sprintf("%s; another replica uses server_id %d (%s): the server disconnects one of two replicas with the same id",
			base, ours, strings.Join(where, ", ")),
		Fix: fmt.Sprintf("pick another Mysql.ServerID (not %d, not one of the server's replicas' ids)", ours)}
}

func dumpList(ds []binlog.DumpThread) string {
	s := make([]string, 0, len(ds))
	for _, d := range ds {
		s = append(s, fmt.Sprintf("thread %d from %s", d.ID, d.Host))
	}
	return strings.Join(s, ", ")
}

// account is the connected account quoted for a GRANT statement.
func account(src *binlog.Source) string {
	user, host, err := src.CurrentUser()
	if err != nil {
		return "the dbsync user"
	}
	if host == "" {
		return "'" + sqlEscape(user) + "'"
	}
	return "'" + sqlEscape(user) + "'@'" + sqlEscape(host) + "'"
}

func sqlEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// privilege is one privilege dbsync needs, with the names SHOW GRANTS may
// print for it.
type privilege struct {
	name    string
	aliases []string
	why     string
}

var needed = []privilege{
	{"REPLICATION SLAVE", []string{"REPLICATION SLAVE", "REPLICATION REPLICA"}, "to read the binlog"},
	{"REPLICATION CLIENT", []string{"REPLICATION CLIENT", "BINLOG MONITOR"}, "for SHOW BINARY LOGS and SHOW MASTER STATUS"},
	{"SELECT", []string{"SELECT"}, "to read table definitions"},
}

// checkGrants parses SHOW GRANTS for the privileges dbsync needs.
func checkGrants(src *binlog.Source) Finding {
	grants, err := src.Grants()
	if err != nil {
		return Finding{Check: CheckGrants, Status: WARN, Detail: fmt.Sprintf("cannot read the grants: %v", err),
			Fix: fmt.Sprintf("make sure %s has REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*", account(src))}
	}
	global := map[string]bool{}
	selectOn := []string{}
	var roles []string
	for _, g := range grants {
		privs, on, ok := parseGrant(g)
		if !ok {
			continue
		}
		if on == "" {
			roles = append(roles, privs...)
			continue
		}
		for _, p := range privs {
			if on == "*.*" {
				global[p] = true
			} else if p == "SELECT" || p == "ALL PRIVILEGES" || p == "ALL" {
				selectOn = append(selectOn, on)
			}
		}
	}
	all := global["ALL PRIVILEGES"] || global["ALL"]
	var missing, notes []string
	for _, p := range needed {
		has := all
		for _, a := range p.aliases {
			has = has || global[a]
		}
		if has {
			continue
		}
		if p.name == "SELECT" && len(selectOn) > 0 {
			notes = append(notes, fmt.Sprintf("SELECT only on %s: tables elsewhere cannot be decoded", strings.Join(selectOn, ", ")))
			continue
		}
		missing = append(missing, p.name)
		notes = append(notes, fmt.Sprintf("%s missing (needed %s)", p.name, p.why))
	}
	acct := account(src)
	if len(missing) == 0 && len(notes) == 0 {
		return Finding{Check: CheckGrants, Status: OK, Detail: fmt.Sprintf("%s has REPLICATION SLAVE, REPLICATION CLIENT and SELECT on *.*", acct)}
	}
	fixPrivs := missing
	if len(missing) == 0 {
		fixPrivs = []string{"SELECT"}
	}
	fix := fmt.Sprintf("GRANT %s ON *.* TO %s", strings.Join(fixPrivs, ", "), acct)
	detail := fmt.Sprintf("%s: %s", acct, strings.Join(notes, "; "))
	if len(missing) == 0 || len(roles) > 0 {
		// Partial SELECT, or privileges that may come from a role SHOW
		// GRANTS does not expand: dbsync may still work.
		if len(roles) > 0 {
			detail += fmt.Sprintf(" (the account also has role(s) %s, whose privileges are not checked)", strings.Join(roles, ", "))
		}
		return Finding{Check: CheckGrants, Status: WARN, Detail: detail, Fix: fix}
	}
	return Finding{Check: CheckGrants, Status: FAIL, Detail: detail, Fix: fix}
}

// parseGrant splits one SHOW GRANTS line into its privileges (upper case,
// column lists dropped) and its object ("*.*", "`shop`.*"). A role grant
// ("GRANT `r` TO ...") returns the role names and an empty object.
func parseGrant(g string) (privs []string, on string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(g), "GRANT ")
	if !found {
		return nil, "", false
	}
	// Split at top-level " ON " / " TO " (column lists are in parentheses).
	depth, end, isRole := 0, -1, false
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '(':
			depth++
		case ')':
			depth--
		case '`', '\'', '"':
			if j := strings.IndexByte(rest[i+1:], rest[i]); j >= 0 {
				i += j + 1
			}
		case ' ':
			if depth == 0 && strings.HasPrefix(rest[i:], " ON ") {
				end = i
			} else if depth == 0 && strings.HasPrefix(rest[i:], " TO ") {
				end, isRole = i, true
			}
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 {
		return nil, "", false
	}
	for _, p := range splitTop(rest[:end]) {
		if k := strings.IndexByte(p, '('); k >= 0 {
			p = p[:k]
		}
		p = strings.TrimSpace(p)
		if !isRole {
			p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
		}
		if p != "" {
			privs = append(privs, p)
		}
	}
	if isRole {
		return privs, "", true
	}
	obj := strings.TrimSpace(rest[end+len(" ON "):])
	if k := strings.Index(obj, " TO "); k >= 0 {
		obj = obj[:k]
	}
	obj = strings.TrimPrefix(strings.TrimPrefix(obj, "TABLE "), "PROCEDURE ")
	return privs, strings.TrimSpace(obj), true
}

// splitTop splits s at commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// shortRetention is the binlog retention below which a producer outage of
// an ordinary length (a weekend) may lose changes.
const shortRetention = 24 * time.Hour

// retention returns the server's binlog expiry (0: never) and how it was
// found.
func retention(src *binlog.Source) (time.Duration, string, error) {
	if auto, err := src.Variable("binlog_expire_logs_auto_purge"); err != nil {
		return 0, "", err
	} else if strings.EqualFold(auto, "OFF") {
		return 0, "binlog_expire_logs_auto_purge=OFF", nil
	}
	secs, err := src.Variable("binlog_expire_logs_seconds")
	if err != nil {
		return 0, "", err
	}
	if n, _ := strconv.ParseUint(secs, 10, 64); n > 0 {
		return time.Duration(n) * time.Second, "binlog_expire_logs_seconds=" + secs, nil
	}
	days, err := src.Variable("expire_logs_days")
	if err != nil {
		return 0, "", err
	}
	if d, _ := strconv.ParseFloat(days, 64); d > 0 {
		return time.Duration(math.Round(d * 86400 * float64(time.Second))), "expire_logs_days=" + days, nil
	}
	return 0, "binlog_expire_logs_seconds=0, expire_logs_days=0", nil
}

// checkRetention relates binlog expiry to the checkpoint.
func checkRetention(src *binlog.Source, checkpoint *position.Position) Finding {
	const raise = "SET GLOBAL binlog_expire_logs_seconds=604800; and the same in the server's config file (7 days; longer than any producer outage)"
	ret, how, err := retention(src)
	if err != nil {
		return Finding{Check: CheckRetention, Status: WARN, Detail: fmt.Sprintf("cannot read the binlog expiry: %v", err),
			Fix: "make sure the configured user can run SHOW GLOBAL VARIABLES"}
	}
	files, err := src.BinaryLogs()
	if err != nil {
		return Finding{Check: CheckRetention, Status: WARN, Detail: fmt.Sprintf("cannot list the binary logs: %v", err),
			Fix: fmt.Sprintf("GRANT REPLICATION CLIENT ON *.* TO %s", account(src))}
	}
	retText := "binlogs never expire (" + how + ")"
	if ret > 0 {
		retText = fmt.Sprintf("binlogs expire after %s (%s)", ret, how)
	}
	oldest := "none"
	if len(files) > 0 {
		oldest = files[0].Name
	}
	if checkpoint == nil {
		detail := fmt.Sprintf("%s; no checkpoint yet; %d binlog file(s), oldest %s", retText, len(files), oldest)
		if ret > 0 && ret < shortRetention {
			return Finding{Check: CheckRetention, Status: WARN,
				Detail: detail + fmt.Sprintf("; a producer stopped for longer than %s loses changes", ret), Fix: raise}
		}
		return Finding{Check: CheckRetention, Status: OK, Detail: detail}
	}
	if err := src.CheckResumable(*checkpoint); err != nil {
		fix := "re-sync the consumers from a snapshot, then reset the checkpoint (delete it to start at the current position)"
		var pe *binlog.PurgedError
		if errors.As(err, &pe) {
			fix = fmt.Sprintf("re-sync the consumers from a snapshot, then delete the checkpoint (dbsync starts at the current position) "+
				"or set it to %s:4; then %s", pe.Oldest, raise)
		}
		return Finding{Check: CheckRetention, Status: FAIL, Detail: err.Error(), Fix: fix}
	}
	var behind uint64
	nfiles := 0
	seen := false
	for _, f := range files {
		if f.Name == checkpoint.File {
			seen = true
			behind += f.Size - uint64(checkpoint.Pos)
			continue
		}
		if seen {
			behind += f.Size
			nfiles++
		}
	}
	detail := fmt.Sprintf("%s; checkpoint %s is %s behind the current end of the binlog (%d later file(s)); oldest binlog %s",
		retText, checkpoint, byteSize(behind), nfiles, oldest)
	switch {
	case ret > 0 && checkpoint.File == files[0].Name && len(files) > 1:
		return Finding{Check: CheckRetention, Status: WARN,
			Detail: detail + ": the checkpoint is in the oldest binlog left, the next expiry purges it and the changes after the checkpoint with it " +
				"unless the producer catches up first",
			Fix: "start the producer now so it catches up; " + raise}
	case ret > 0 && ret < shortRetention:
		return Finding{Check: CheckRetention, Status: WARN,
			Detail: detail + fmt.Sprintf("; a producer stopped for longer than %s loses changes", ret), Fix: raise}
	}
	return Finding{Check: CheckRetention, Status: OK, Detail: detail}
}

func byteSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func orNone(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// checkStore opens the configured checkpoint store and reads the
// checkpoint, which it returns when there is one. It never creates a bolt
// file that does not exist.
func checkStore(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (Finding, *position.Position) {
	startAt := "the server's current position"
	if cfg.Mysql.StartAt == "oldest" {
		startAt = "the oldest binlog the server has (Mysql.StartAt=oldest)"
	}
	none := func(where string) Finding {
		return Finding{Check: CheckCheckpoint, Status: WARN,
			Detail: fmt.Sprintf("no checkpoint yet in %s: the producer will start at %s; earlier changes are not published", where, startAt),
			Fix:    "nothing for a first start; set Mysql.StartAt to \"oldest\" to start at the oldest binlog instead, or restore the checkpoint if one existed"}
	}
	var (
		store storage.PositionStorager
		where string
		err   error
	)
	switch cfg.Storage.DaoName {
	case "redis":
		where = fmt.Sprintf("redis at %s (db %d, key %q)", cfg.RedisAddr(), cfg.Redis.DB, cfg.Storage.PosKey)
		store, err = storage.OpenRedis(ctx, storage.RedisOptions{
			Addr: cfg.RedisAddr(), Password: cfg.Redis.Password, DB: cfg.Redis.DB, Key: cfg.Storage.PosKey,
		}, log)
		if err != nil {
			return Finding{Check: CheckCheckpoint, Status: FAIL, Detail: err.Error(),
				Fix: "start Redis there, or fix Redis.Host, Redis.Port and Redis.Password (DBSYNC_REDIS_HOST, DBSYNC_REDIS_PORT, DBSYNC_REDIS_PASSWORD)"}, nil
		}
	default:
		path := cfg.BoltPath()
		where = "bolt file " + path
		if _, statErr := os.Stat(path); errors.Is(statErr, os.ErrNotExist) {
			return none(where), nil
		}
		store, err = storage.OpenBolt(storage.BoltOptions{
			Path: path, Bucket: cfg.Bolt.Bucket, Key: cfg.Storage.PosKey, Timeout: cfg.Bolt.Timeout.Duration(),
		}, log)
		switch {
		case err == nil:
		case errors.Is(err, berrors.ErrTimeout):
			return Finding{Check: CheckCheckpoint, Status: WARN,
				Detail: fmt.Sprintf("%s is locked: a producer is running (%v)", where, err),
				Fix:    "nothing if that producer is the one you mean to run; otherwise stop it, or give this one its own Bolt.File / DataDir"}, nil
		case errors.Is(err, storage.ErrCorrupt):
			return Finding{Check: CheckCheckpoint, Status: FAIL, Detail: err.Error(),
				Fix: fmt.Sprintf("restore %s from a backup; or, after re-syncing the consumers, delete it (the producer then starts at %s)", path, startAt)}, nil
		default:
			return Finding{Check: CheckCheckpoint, Status: FAIL, Detail: err.Error(),
				Fix: "make the file readable and writable by the producer, or point Bolt.File / DataDir at a writable place"}, nil
		}
	}
	defer store.Close()
	pos, err := store.Get(ctx)
	switch {
	case err == nil:
		return Finding{Check: CheckCheckpoint, Status: OK, Detail: fmt.Sprintf("checkpoint %s in %s", pos, where)}, &pos
	case errors.Is(err, storage.ErrNoCheckpoint):
		return none(where), nil
	case errors.Is(err, storage.ErrCorrupt):
		return Finding{Check: CheckCheckpoint, Status: FAIL, Detail: err.Error(),
			Fix: "restore the checkpoint from a backup, or set it explicitly; after re-syncing the consumers, deleting it starts at " + startAt}, nil
	}
	return Finding{Check: CheckCheckpoint, Status: FAIL, Detail: err.Error(), Fix: "make the checkpoint store reachable and readable"}, nil
}

// checkBroker dials the configured broker without creating anything.
func checkBroker(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) Finding {
	if cfg.MQName == "jetstream" {
		if cfg.JetStream.URL == "" {
			return Finding{Check: CheckBroker, Status: OK,
				Detail: fmt.Sprintf("embedded broker (started by the producer on %s, data in %s/nats)", cfg.JetStream.Listen, orDot(cfg.DataDir))}
		}
		return checkJetStream(ctx, cfg)
	}
	return checkStan(cfg)
}

func orDot(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

func dialNATS(rawURL, name string) (*nats.Conn, *Finding) {
	nc, err := nats.Connect(rawURL, nats.Name(name), nats.Timeout(brokerTimeout), nats.NoReconnect())
	if err != nil {
		return nil, &Finding{Check: CheckBroker, Status: FAIL,
			Detail: fmt.Sprintf("cannot connect to NATS at %s: %v", redactURL(rawURL), err)}
	}
	return nc, nil
}

func checkJetStream(ctx context.Context, cfg *config.Config) Finding {
	u := redactURL(cfg.JetStream.URL)
	nc, bad := dialNATS(cfg.JetStream.URL, "dbsync-doctor")
	if bad != nil {
		bad.Fix = "start the NATS server there, or fix JetStream.URL (DBSYNC_JETSTREAM_URL); leave it empty to run the embedded broker"
		return *bad
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return Finding{Check: CheckBroker, Status: FAIL, Detail: fmt.Sprintf("NATS at %s: %v", u, err), Fix: "enable JetStream on the NATS server (nats-server -js)"}
	}
	ctx, cancel := context.WithTimeout(ctx, brokerTimeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		return Finding{Check: CheckBroker, Status: FAIL, Detail: fmt.Sprintf("NATS at %s has no JetStream for this account: %v", u, err),
			Fix: "enable JetStream on the NATS server (nats-server -js, or a jetstream block in its config) and for the account dbsync uses"}
	}
	stream := "will be created by the producer"
	if s, err := js.Stream(ctx, cfg.JetStream.Stream); err == nil {
		stream = fmt.Sprintf("exists (%d messages)", s.CachedInfo().State.Msgs)
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return Finding{Check: CheckBroker, Status: WARN, Detail: fmt.Sprintf("NATS at %s: cannot read stream %s: %v", u, cfg.JetStream.Stream, err),
			Fix: "check the account's permissions for the JetStream API ($JS.API.>)"}
	}
	return Finding{Check: CheckBroker, Status: OK, Detail: fmt.Sprintf("NATS with JetStream at %s; stream %s %s", u, cfg.JetStream.Stream, stream)}
}

func checkStan(cfg *config.Config) Finding {
	rawURL := cfg.StanURL()
	u := redactURL(rawURL)
	nc, bad := dialNATS(rawURL, "dbsync-doctor")
	if bad != nil {
		bad.Fix = "start NATS Streaming there, or fix Stan.Host and Stan.Port (DBSYNC_STAN_HOST, DBSYNC_STAN_PORT)"
		return *bad
	}
	defer nc.Close()
	// A client id of our own: the producer's may be in use by a running producer.
	clientID := fmt.Sprintf("%s-doctor-%d", cfg.Stan.ClientID, os.Getpid())
	sc, err := stan.Connect(cfg.Stan.ClusterID, clientID, stan.NatsConn(nc), stan.ConnectWait(brokerTimeout))
	if err != nil {
		fix := fmt.Sprintf("check that a NATS Streaming server (not a plain NATS server) runs there with cluster id %q, or set Stan.ClusterID (DBSYNC_STAN_CLUSTER_ID) to its -cid", cfg.Stan.ClusterID)
		if errors.Is(err, stan.ErrConnectReqTimeout) {
			fix = fmt.Sprintf("set Stan.ClusterID (DBSYNC_STAN_CLUSTER_ID) to the streaming server's cluster id (its -cid); %q got no answer", cfg.Stan.ClusterID)
		}
		return Finding{Check: CheckBroker, Status: FAIL,
			Detail: fmt.Sprintf("NATS at %s answered, but NATS Streaming cluster %q did not accept a connection: %v", u, cfg.Stan.ClusterID, err), Fix: fix}
	}
	_ = sc.Close()
	return Finding{Check: CheckBroker, Status: OK, Detail: fmt.Sprintf("NATS Streaming at %s, cluster %q", u, cfg.Stan.ClusterID)}
}

// redactURL hides a password in a URL's user info.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
