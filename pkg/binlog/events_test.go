package binlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestCheckBoundary: the start of a file, a GTID event, the end of the
// binlog and an older file's rotate are boundaries; an offset inside an
// event and the start of an event inside a transaction are refused with a
// permanent error naming the nearest boundaries and a fix, also when the
// file is read in pages of two events.
func TestCheckBoundary(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, src, _ := connectTest(ctx, t, db)
	db.Exec(t, "CREATE DATABASE b", "CREATE TABLE b.t (id INT PRIMARY KEY)")
	db.Exec(t, "FLUSH BINARY LOGS")
	cur, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(t, "INSERT INTO b.t VALUES (1), (2)", "INSERT INTO b.t VALUES (3)")
	end, err := src.CurrentPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := src.showEvents(ctx, cur.File, 4, 100)
	if err != nil {
		t.Fatal(err)
	}
	var gtids, inside []binlogEvent
	for _, ev := range evs {
		switch {
		case strings.EqualFold(ev.Type, "Gtid"):
			gtids = append(gtids, ev)
		case strings.HasPrefix(ev.Type, "Table_map"), strings.HasPrefix(ev.Type, "Write_rows"), ev.Type == "Xid":
			inside = append(inside, ev)
		}
	}
	if len(gtids) != 2 || len(inside) == 0 {
		t.Fatalf("events of %s: %+v", cur.File, evs)
	}
	at := func(p uint64) position.Position { return position.Position{File: cur.File, Pos: uint32(p)} }
	for _, page := range []int{0, 2} {
		src.eventsPage = page
		for _, ok := range []position.Position{at(4), at(gtids[0].Pos), at(gtids[1].Pos), end, {File: "mysql-bin.000001", Pos: 4}} {
			if err := src.CheckBoundary(ctx, ok); err != nil {
				t.Errorf("page %d: %s refused: %v", page, ok, err)
			}
		}
		for _, bad := range []position.Position{at(inside[0].Pos), at(gtids[1].Pos + 3), at(inside[len(inside)-1].Pos)} {
			err := src.CheckBoundary(ctx, bad)
			t.Logf("page %d: %s: %v", page, bad, err)
			switch {
			case err == nil:
				t.Errorf("page %d: %s accepted", page, bad)
			case !failure.IsPermanent(err) || failure.Fix(err) == "":
				t.Errorf("page %d: %s: %v is not permanent or has no fix", page, bad, err)
			case !strings.Contains(err.Error(), "nearest transaction boundaries"):
				t.Errorf("page %d: %s: %v names no boundaries", page, bad, err)
			}
		}
	}
	// Inside the first transaction: the boundaries are its GTID and the
	// next event a transaction or file framing starts at (the next GTID,
	// or a Binlog_checkpoint MariaDB writes when the previous file no
	// longer needs crash recovery, whenever that is).
	next := gtids[1]
	for _, ev := range evs {
		if ev.Pos > inside[0].Pos && startsGroup(ev, true) {
			next = ev
			break
		}
	}
	src.eventsPage = 2
	err = src.CheckBoundary(ctx, at(inside[0].Pos))
	if want := at(gtids[0].Pos).String() + " before and " + at(next.Pos).String() + " after"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("inside the first transaction: %v, want it to name %q", err, want)
	}

	// A statement is named by kind and object, its text never quoted: it
	// may hold another account's password.
	const password = "Pw-Boundary-9z"
	db.Exec(t, "CREATE USER 'leak'@'%' IDENTIFIED BY '"+password+"'")
	if evs, err = src.showEvents(ctx, cur.File, 4, 1000); err != nil {
		t.Fatal(err)
	}
	var createUser *binlogEvent
	for i := range evs {
		if strings.EqualFold(evs[i].Type, "Query") && strings.Contains(evs[i].Info, "CREATE USER") {
			createUser = &evs[i]
		}
	}
	if createUser == nil {
		t.Fatalf("no CREATE USER event in %s: %+v", cur.File, evs)
	}
	err = src.CheckBoundary(ctx, at(createUser.Pos))
	if err == nil || strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), "CREATE USER") {
		t.Errorf("the CREATE USER event: %v; want a refusal naming CREATE USER without the password", err)
	}
}

// TestStartsGroup: GTID events (MariaDB's, MySQL's, anonymous) and a
// file's framing events start a group; a BEGIN only in a binlog without
// GTID events; the events inside a transaction never.
func TestStartsGroup(t *testing.T) {
	for _, tc := range []struct {
		typ, info          string
		noGTIDs, withGTIDs bool
	}{
		{"Gtid", "BEGIN GTID 0-1-5", true, true},
		{"Anonymous_Gtid", "SET @@SESSION.GTID_NEXT= 'ANONYMOUS'", true, true},
		{"Format_desc", "Server ver: 8.0.36, Binlog ver: 4", true, true},
		{"Previous_gtids", "", true, true},
		{"Rotate", "mysql-bin.000002;pos=4", true, true},
		{"Query", "BEGIN", true, false},
		{"Query", "COMMIT", false, false},
		{"Table_map", "table_id: 18 (b.t)", false, false},
		{"Write_rows", "table_id: 18 flags: STMT_END_F", false, false},
		{"Xid", "COMMIT /* xid=10 */", false, false},
		{"Annotate_rows", "INSERT INTO b.t VALUES (1)", false, false},
	} {
		ev := binlogEvent{Type: tc.typ, Info: tc.info}
		if got := startsGroup(ev, false); got != tc.noGTIDs {
			t.Errorf("%s %q without GTIDs: %v, want %v", tc.typ, tc.info, got, tc.noGTIDs)
		}
		if got := startsGroup(ev, true); got != tc.withGTIDs {
			t.Errorf("%s %q with GTIDs: %v, want %v", tc.typ, tc.info, got, tc.withGTIDs)
		}
	}
}
