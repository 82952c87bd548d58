package doctor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/dbsync/dbsync/pkg/binlog"
)

// checkServerID compares ours with the server's own server_id and with the
// server_ids of the replicas registered with it.
func checkServerID(ctx context.Context, s server) Finding {
	src, ours := s.src, s.ourServerID
	if src.ServerID() == ours {
		return Finding{Check: CheckServerID, Status: FAIL,
			Detail: fmt.Sprintf("the server's own server_id is %d, the same as Mysql.ServerID: the server refuses a replica with its own id", ours),
			Fix:    fmt.Sprintf("pick another Mysql.ServerID (any unused number other than %d)", ours)}
	}
	base := fmt.Sprintf("server's server_id %d, Mysql.ServerID %d", src.ServerID(), ours)
	user, _, _ := src.CurrentUser(ctx)
	var ownDumps []binlog.DumpThread
	if dumps, err := src.BinlogDumps(ctx); err == nil {
		for _, d := range dumps {
			if user == "" || d.User == user {
				ownDumps = append(ownDumps, d)
			}
		}
	}
	hosts, err := src.ReplicaHosts(ctx)
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
					"(GRANT REPLICATION MASTER ADMIN ON *.* TO %s lets this check see replicas' server_ids)", account(ctx, src))}
		}
		return Finding{Check: CheckServerID, Status: OK,
			Detail: fmt.Sprintf("%s; other replicas' server_ids not checked (listing them needs REPLICATION MASTER ADMIN on MariaDB; "+
				"optional: GRANT REPLICATION MASTER ADMIN ON *.* TO %s)", base, account(ctx, src))}
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
