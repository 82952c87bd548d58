package binlog

import (
	"context"
	"fmt"
	"strings"

	"github.com/dbsync/dbsync/pkg/position"
)

// PositionAfterGTID finds the transaction with the given GTID (MariaDB
// "0-1-42", MySQL "uuid:42") in the binlogs the server still has and returns
// the position right after it: resuming there publishes everything after
// that transaction. It reads the binlogs in pages (eventsPage events per
// query), oldest first. It fails, naming the GTID, when no binlog holds it.
func (s *Source) PositionAfterGTID(ctx context.Context, gtid string) (position.Position, error) {
	files, err := s.BinaryLogs(ctx)
	if err != nil {
		return position.Position{}, err
	}
	for _, f := range files {
		var after position.Position
		found, inTx := false, false
		err := s.eachEvent(ctx, f.Name, func(ev binlogEvent) bool {
			typ, info := ev.Type, ev.Info
			if !found {
				if strings.EqualFold(typ, "Gtid") && gtidInfoMatches(info, gtid) {
					found, inTx = true, strings.HasPrefix(strings.ToUpper(info), "BEGIN")
				}
				return true
			}
			end := position.Position{File: f.Name, Pos: uint32(ev.End), GTID: gtid}
			switch {
			case strings.EqualFold(typ, "Xid"), strings.EqualFold(typ, "XA_prepare"):
				after = end
			case strings.EqualFold(typ, "Query"):
				switch queryKind(info) {
				case queryBegin, queryInTx:
					inTx = true
				case queryCommit:
					after = end
				default:
					if !inTx {
						after = end
					}
				}
			}
			return after.File == ""
		})
		if err != nil {
			return position.Position{}, err
		}
		if after.File != "" {
			return after, nil
		}
		if found {
			return position.Position{}, fmt.Errorf("GTID %s starts in %s but its transaction does not end there", gtid, f.Name)
		}
	}
	return position.Position{}, fmt.Errorf("no binlog on MySQL at %s holds GTID %s (oldest binlog: %s); check the GTID, or set the checkpoint by file and position",
		s.cfg.addr(), gtid, oldestName(files))
}

// gtidInfoMatches reports whether a Gtid event's Info column names gtid:
// MariaDB "BEGIN GTID 0-1-42 cid=7" / "GTID 0-1-42", MySQL
// "SET @@SESSION.GTID_NEXT= 'uuid:42'".
func gtidInfoMatches(info, gtid string) bool {
	for _, f := range strings.Fields(strings.ReplaceAll(info, "'", " ")) {
		if f == gtid {
			return true
		}
	}
	return false
}

func oldestName(files []BinlogFile) string {
	if len(files) == 0 {
		return "none"
	}
	return files[0].Name
}
