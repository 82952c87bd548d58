package binlog

import (
	"strings"
	"testing"

	"github.com/dbsync/dbsync/pkg/position"
)

// scanRows feeds SHOW BINLOG EVENTS rows of one file to a resumeScan.
func scanRows(t *testing.T, want string, start string, rows []binlogEvent) *resumeScan {
	t.Helper()
	w, err := position.ParseGTIDState(want)
	if err != nil {
		t.Fatal(err)
	}
	r := &resumeScan{want: w, cur: position.MustGTIDState(start)}
	for _, ev := range rows {
		if !r.event("binlog.000003", ev) {
			break
		}
	}
	return r
}

// TestResumeScanMySQL finds the place after a MySQL GTID set in SHOW
// BINLOG EVENTS rows as MySQL 8 prints them: the first transaction the set
// lacks, even when a transaction it holds comes later (another source's,
// ordered differently on this replica); the state there is the set plus
// what the file held before.
func TestResumeScanMySQL(t *testing.T) {
	const a, b = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	gtid := func(pos, end uint64, g string) binlogEvent {
		return binlogEvent{Pos: pos, End: end, Type: "Gtid", Info: "SET @@SESSION.GTID_NEXT= '" + g + "'"}
	}
	rows := []binlogEvent{
		{Pos: 4, End: 126, Type: "Format_desc", Info: "Server ver: 8.0.36, Binlog ver: 4"},
		{Pos: 126, End: 197, Type: "Previous_gtids", Info: a + ":1-20"},
		gtid(197, 276, a+":21"), {Pos: 276, End: 351, Type: "Query", Info: "BEGIN"}, {Pos: 351, End: 382, Type: "Xid", Info: "COMMIT /* xid=7 */"},
		gtid(382, 461, a+":22"), {Pos: 461, End: 492, Type: "Xid", Info: "COMMIT /* xid=8 */"},
		gtid(492, 571, b+":5"), {Pos: 571, End: 602, Type: "Xid", Info: "COMMIT /* xid=9 */"},
		gtid(602, 681, a+":23"), {Pos: 681, End: 712, Type: "Xid", Info: "COMMIT /* xid=10 */"},
	}
	r := scanRows(t, a+":1-21,"+b+":1-5", a+":1-20", rows)
	at := r.resumeAt()
	if r.found == nil || at.File != "binlog.000003" || at.Pos != 382 {
		t.Fatalf("resume at %s, want binlog.000003:382 (the GTID event of %s:22)", at, a)
	}
	if at.GTID != a+":1-21,"+b+":1-5" {
		t.Errorf("state there %q", at.GTID)
	}
	// The pass skips b:5, which comes after the place but is held.
	if !position.MustGTIDState(at.GTID).Covers(b+":5") || position.MustGTIDState(at.GTID).Covers(a+":22") {
		t.Errorf("state %q must cover %s:5 and not %s:22", at.GTID, b, a)
	}
	// A state holding everything: the end of the last event read.
	r = scanRows(t, a+":1-23,"+b+":1-5", a+":1-20", rows)
	if at := r.resumeAt(); r.found != nil || at.Pos != 712 {
		t.Fatalf("with everything held, resume at %s, want the end 712", at)
	}
	if g := gtidOfEvent(binlogEvent{Type: "Anonymous_Gtid", Info: "SET @@SESSION.GTID_NEXT= 'ANONYMOUS'"}); g != "" {
		t.Errorf("anonymous GTID read as %q", g)
	}
}

// TestResumeScanMariaDB: MariaDB's rows ("BEGIN GTID 0-1-42"), two
// domains, and a transaction at the state's sequence number from another
// server (diverged histories) refused.
func TestResumeScanMariaDB(t *testing.T) {
	gtid := func(pos, end uint64, g string) binlogEvent {
		return binlogEvent{Pos: pos, End: end, Type: "Gtid", Info: "BEGIN GTID " + g}
	}
	rows := []binlogEvent{
		{Pos: 4, End: 256, Type: "Format_desc", Info: "Server ver: 10.11.19-MariaDB-log, Binlog ver: 4"},
		{Pos: 256, End: 299, Type: "Gtid_list", Info: "[0-1-40]"},
		gtid(299, 341, "0-1-41"), {Pos: 341, End: 372, Type: "Xid", Info: "COMMIT /* xid=1 */"},
		gtid(372, 414, "1-1-7"), {Pos: 414, End: 445, Type: "Xid", Info: "COMMIT /* xid=2 */"},
		gtid(445, 487, "0-1-42"), {Pos: 487, End: 518, Type: "Xid", Info: "COMMIT /* xid=3 */"},
	}
	r := scanRows(t, "0-1-41,1-1-6", "0-1-40", rows)
	if at := r.resumeAt(); r.found == nil || at.Pos != 372 || at.GTID != "0-1-41,1-1-6" {
		t.Fatalf("resume at %s, want 372 with state 0-1-41,1-1-6", at)
	}
	r = scanRows(t, "0-2-41", "0-1-40", rows)
	if r.diverged == nil || !strings.Contains(r.diverged.Error(), "0-2-41") {
		t.Fatalf("0-1-41 where the state says 0-2-41: diverged = %v", r.diverged)
	}
}
