package binlog

import (
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/dbsync/dbsync/pkg/position"
)

// gtidTracker follows the server's GTID state along the stream: the start
// position's state plus every transaction read since, rendered as the
// checkpoint's GTID. After a failover it also says which transactions were
// published before from another server and are not published again.
type gtidTracker struct {
	// mariadb is MariaDB's last GTID per domain, in domain order.
	mariadb []mysql.MariadbGTID
	// mysql is MySQL's executed set (nil until a MySQL GTID is read or
	// the start state is a MySQL set).
	mysql *position.GTIDState
	// text is the state rendered.
	text string
	// skip, when not empty, holds transactions already published from
	// another server (Config.SkipGTIDs); skipping is set while the
	// stream is inside one of them.
	skip     position.GTIDState
	skipping bool
}

// newGTIDTracker starts from state (a position's GTID) with the
// transactions of skip not to be published again.
func newGTIDTracker(state string, skip position.GTIDState) *gtidTracker {
	t := &gtidTracker{text: state, skip: skip}
	st := position.MustGTIDState(state)
	if st.IsMySQL() {
		t.mysql = &st
		return t
	}
	for _, g := range st.Domains() {
		t.mariadb = append(t.mariadb, mysql.MariadbGTID{DomainID: g.Domain, ServerID: g.Server, SequenceNumber: g.Seq})
	}
	return t
}

// mariadb records a MariaDB transaction's GTID (rendered as text) as its
// domain's last. The common case, one domain, renders nothing new.
func (t *gtidTracker) addMariaDB(g mysql.MariadbGTID, text string) {
	t.skipping = !t.skip.IsEmpty() && t.skip.Covers(text)
	if len(t.mariadb) == 0 || len(t.mariadb) == 1 && t.mariadb[0].DomainID == g.DomainID {
		if t.skipping && len(t.mariadb) == 1 && t.mariadb[0].SequenceNumber >= g.SequenceNumber {
			return // after a failover the state keeps what was published
		}
		t.mariadb = append(t.mariadb[:0], g)
		t.text = text
		return
	}
	i := 0
	for i < len(t.mariadb) && t.mariadb[i].DomainID < g.DomainID {
		i++
	}
	if i < len(t.mariadb) && t.mariadb[i].DomainID == g.DomainID {
		if t.skipping && t.mariadb[i].SequenceNumber >= g.SequenceNumber {
			return // after a failover the state keeps what was published
		}
		t.mariadb[i] = g
	} else {
		t.mariadb = append(t.mariadb[:i], append([]mysql.MariadbGTID{g}, t.mariadb[i:]...)...)
	}
	var b strings.Builder
	for i, d := range t.mariadb {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(mariadbGTID(d))
	}
	t.text = b.String()
}

// addMySQL adds a MySQL transaction's GTID ("uuid:n") to the executed set.
func (t *gtidTracker) addMySQL(gtid string) {
	t.skipping = !t.skip.IsEmpty() && t.skip.Covers(gtid)
	if gtid == "" {
		return // anonymous: the server has no GTIDs
	}
	if t.mysql == nil {
		t.mysql = &position.GTIDState{}
	}
	if t.mysql.Add(gtid) {
		t.text = t.mysql.String()
	}
}
