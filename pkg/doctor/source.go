package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
)

// server is what the source checks look at: the connection, the replica
// server id dbsync registers with (Mysql.ServerID), and the checkpoint (nil
// when there is none).
type server struct {
	src         *binlog.Source
	ourServerID uint32
	checkpoint  *position.Position
}

// sourceCheck is one check of the source server.
type sourceCheck struct {
	name string
	// needsBinlog leaves the check out when binary logging is off.
	needsBinlog bool
	run         func(ctx context.Context, s server) Finding
}

// sourceChecks lists the source server's checks in report order.
func sourceChecks() []sourceCheck {
	return []sourceCheck{
		{CheckLogBin, false, variableCheck(CheckLogBin, "log_bin", judgeLogBin)},
		{CheckFormat, false, variableCheck(CheckFormat, "binlog_format", judgeFormat)},
		{CheckRowImage, false, variableCheck(CheckRowImage, "binlog_row_image", judgeRowImage)},
		{CheckRowMetadata, false, variableCheck(CheckRowMetadata, "binlog_row_metadata", judgeRowMetadata)},
		{CheckCompression, false, variableCheck(CheckCompression, "binlog_transaction_compression", judgeCompression)},
		{CheckServerID, false, checkServerID},
		{CheckGrants, false, checkGrants},
		{CheckRetention, true, checkRetention},
		{CheckDump, true, checkDump},
	}
}

// SourceChecks inspects the source server through src: binary logging, its
// format, row image and metadata, transaction compression, server_id
// clashes with ourServerID (Mysql.ServerID), the connected user's grants,
// and binlog retention against checkpoint (nil when there is none) and
// whether the server streams its binlog (both left out when binary logging
// is off). A query that fails makes its check a WARN naming the error; it
// never stops the others.
func SourceChecks(ctx context.Context, src *binlog.Source, ourServerID uint32, checkpoint *position.Position) []Finding {
	s := server{src: src, ourServerID: ourServerID, checkpoint: checkpoint}
	var out []Finding
	binlogOn := true
	for _, c := range sourceChecks() {
		if c.needsBinlog && !binlogOn {
			continue
		}
		f := c.run(ctx, s)
		if c.name == CheckLogBin && f.Status == FAIL {
			binlogOn = false
		}
		out = append(out, f)
	}
	return out
}

// variableCheck reads a global variable and lets judge decide; a failed
// query is a WARN.
func variableCheck(check, name string, judge func(s server, v string) Finding) func(context.Context, server) Finding {
	return func(ctx context.Context, s server) Finding {
		v, err := s.src.Variable(ctx, name)
		if err != nil {
			return Finding{Check: check, Status: WARN, Detail: fmt.Sprintf("cannot read %s: %v", name, err),
				Fix: "make sure the configured user can run SHOW GLOBAL VARIABLES"}
		}
		return judge(s, v)
	}
}

func judgeLogBin(_ server, v string) Finding {
	if !strings.EqualFold(v, "ON") && v != "1" {
		return Finding{Check: CheckLogBin, Status: FAIL,
			Detail: fmt.Sprintf("binary logging is off (log_bin=%s): there is no binlog to stream", orNone(v)),
			Fix:    "start the server with log_bin=ON (or --log-bin) in its config file and restart it"}
	}
	return Finding{Check: CheckLogBin, Status: OK, Detail: "ON"}
}

func judgeFormat(_ server, v string) Finding {
	if !strings.EqualFold(v, "ROW") {
		return Finding{Check: CheckFormat, Status: FAIL,
			Detail: fmt.Sprintf("binlog_format is %s: dbsync needs ROW (it decodes row events, not statements)", orNone(v)),
			Fix:    "SET GLOBAL binlog_format='ROW'; and binlog_format=ROW in the server's config file (sessions opened before keep the old format)"}
	}
	return Finding{Check: CheckFormat, Status: OK, Detail: "ROW"}
}

func judgeRowImage(_ server, v string) Finding {
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

func judgeRowMetadata(s server, v string) Finding {
	switch {
	case v == "":
		return Finding{Check: CheckRowMetadata, Status: WARN,
			Detail: fmt.Sprintf("the server (%s) has no binlog_row_metadata (it needs MySQL 8.0.1+ or MariaDB 10.5+): column names come from "+
				"information_schema, so a column renamed or reordered (same type) after its rows were written goes unnoticed", s.src.Version()),
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

func judgeCompression(_ server, v string) Finding {
	switch {
	case v == "":
		return Finding{Check: CheckCompression, Status: OK, Detail: "not available on this server (no compressed transactions)"}
	case strings.EqualFold(v, "ON") || v == "1":
		return Finding{Check: CheckCompression, Status: OK, Detail: "ON: dbsync decompresses the transactions (each is held in memory whole while it is read)"}
	}
	return Finding{Check: CheckCompression, Status: OK, Detail: strings.ToUpper(v)}
}

// dumpProbeTimeout bounds the binlog dump probe.
const dumpProbeTimeout = 10 * time.Second

// checkDump verifies that the server actually streams its binlog to a
// replica connection: a proxy or a managed service may accept queries but
// not the replication protocol.
func checkDump(ctx context.Context, s server) Finding {
	ctx, cancel := context.WithTimeout(ctx, dumpProbeTimeout)
	defer cancel()
	err := s.src.ProbeDump(ctx)
	if err == nil {
		return Finding{Check: CheckDump, Status: OK, Detail: "the server streams its binlog to a replica connection"}
	}
	switch {
	case binlog.IsRefusedLogin(err):
		return Finding{Check: CheckDump, Status: FAIL, Detail: err.Error(),
			Fix: "check Mysql.Username and Mysql.Password (or DBSYNC_MYSQL_USERNAME, DBSYNC_MYSQL_PASSWORD)"}
	case failure.IsPermanent(err):
		return Finding{Check: CheckDump, Status: FAIL, Detail: err.Error(),
			Fix: "point Mysql.Host at the MySQL or MariaDB server itself (not a proxy), and make sure the account has REPLICATION SLAVE"}
	}
	return Finding{Check: CheckDump, Status: WARN, Detail: fmt.Sprintf("could not try a binlog dump: %v", err),
		Fix: "check that the server is reachable and the account has REPLICATION SLAVE"}
}

func orNone(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}
