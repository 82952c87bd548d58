package position

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// GTIDState is the set of transactions a server's binlog holds up to some
// point, in either flavor: MariaDB's "domain-server-seq" per replication
// domain (gtid_binlog_pos; a domain's transactions up to seq), or MySQL's
// GTID set "uuid:1-5:7,uuid2:1-3" (gtid_executed). The zero value is empty.
// A GTIDState tells whether a transaction, named by its GTID, is in it; it
// is how dbsync finds its place on another server of the same replication
// topology.
type GTIDState struct {
	// mariadb is the last GTID per domain, in domain order.
	mariadb []MariaDBGTID
	// mysql is the set's intervals per source uuid, in uuid order.
	mysql []mysqlSource
}

// MariaDBGTID is one MariaDB GTID, "domain-server-seq".
type MariaDBGTID struct {
	Domain, Server uint32
	Seq            uint64
}

func (g MariaDBGTID) String() string {
	return strconv.FormatUint(uint64(g.Domain), 10) + "-" + strconv.FormatUint(uint64(g.Server), 10) + "-" + strconv.FormatUint(g.Seq, 10)
}

// ParseMariaDBGTID parses "domain-server-seq".
func ParseMariaDBGTID(s string) (MariaDBGTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return MariaDBGTID{}, fmt.Errorf("GTID %q is not domain-server-seq", s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	srv, err2 := strconv.ParseUint(parts[1], 10, 32)
	seq, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return MariaDBGTID{}, fmt.Errorf("GTID %q is not domain-server-seq (three decimal numbers)", s)
	}
	return MariaDBGTID{Domain: uint32(d), Server: uint32(srv), Seq: seq}, nil
}

// mysqlSource is one uuid's part of a MySQL GTID set: closed intervals,
// sorted and disjoint.
type mysqlSource struct {
	uuid      string
	intervals [][2]uint64
}

// isMySQL reports whether s is in MySQL's GTID syntax (uuid:n).
func isMySQL(s string) bool { return strings.Contains(s, ":") }

// ParseGTIDState parses a MariaDB GTID list or a MySQL GTID set ("" is the
// empty state). A single GTID is a state too: MariaDB "0-1-42" is domain 0
// up to 42; MySQL "uuid:42" is that one transaction.
func ParseGTIDState(s string) (GTIDState, error) {
	var st GTIDState
	s = strings.TrimSpace(strings.ReplaceAll(s, "\n", ""))
	if s == "" {
		return st, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !isMySQL(part) {
			g, err := ParseMariaDBGTID(part)
			if err != nil {
				return GTIDState{}, fmt.Errorf("GTID state %q: %w", s, err)
			}
			st.addMariaDB(g)
			continue
		}
		fields := strings.Split(part, ":")
		uuid := strings.ToLower(fields[0])
		if len(fields) < 2 || len(uuid) != 36 {
			return GTIDState{}, fmt.Errorf("GTID set %q: %q is not uuid:interval[:interval...]", s, part)
		}
		for _, iv := range fields[1:] {
			lo, hi, found := strings.Cut(iv, "-")
			a, err1 := strconv.ParseUint(lo, 10, 64)
			b, err2 := a, error(nil)
			if found {
				b, err2 = strconv.ParseUint(hi, 10, 64)
			}
			if err1 != nil || err2 != nil || a == 0 || b < a {
				return GTIDState{}, fmt.Errorf("GTID set %q: interval %q of %s is not n or n-m (1 <= n <= m)", s, iv, uuid)
			}
			st.addMySQL(uuid, a, b)
		}
	}
	return st, nil
}

// MustGTIDState is ParseGTIDState for states dbsync wrote itself; an
// unparsable one is the empty state.
func MustGTIDState(s string) GTIDState {
	st, _ := ParseGTIDState(s)
	return st
}

// IsEmpty reports whether the state holds no transaction.
func (s GTIDState) IsEmpty() bool { return len(s.mariadb) == 0 && len(s.mysql) == 0 }

// IsMySQL reports whether the state is a MySQL GTID set.
func (s GTIDState) IsMySQL() bool { return len(s.mysql) > 0 }

// Domains returns MariaDB's last GTID per domain, in domain order.
func (s GTIDState) Domains() []MariaDBGTID { return slices.Clone(s.mariadb) }

// Clone returns a copy that shares nothing with s.
func (s GTIDState) Clone() GTIDState {
	c := GTIDState{mariadb: slices.Clone(s.mariadb)}
	for _, src := range s.mysql {
		c.mysql = append(c.mysql, mysqlSource{uuid: src.uuid, intervals: slices.Clone(src.intervals)})
	}
	return c
}

// String renders the state as the server does: MariaDB's GTIDs in domain
// order, MySQL's set in uuid order.
func (s GTIDState) String() string {
	var b strings.Builder
	for i, g := range s.mariadb {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(g.String())
	}
	for i, src := range s.mysql {
		if i > 0 || len(s.mariadb) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(src.uuid)
		for _, iv := range src.intervals {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(iv[0], 10))
			if iv[1] != iv[0] {
				b.WriteByte('-')
				b.WriteString(strconv.FormatUint(iv[1], 10))
			}
		}
	}
	return b.String()
}

// Covers reports whether the transaction with the given GTID is in s:
// MariaDB's when s's GTID of its domain has a sequence number at least as
// high (sequence numbers grow within a domain), MySQL's when its number is
// in its uuid's intervals. An unparsable or empty GTID is not covered.
func (s GTIDState) Covers(gtid string) bool {
	if gtid == "" {
		return false
	}
	if !isMySQL(gtid) {
		g, err := ParseMariaDBGTID(gtid)
		if err != nil {
			return false
		}
		last, ok := s.lastOfDomain(g.Domain)
		return ok && last.Seq >= g.Seq
	}
	uuid, n, ok := splitMySQLGTID(gtid)
	if !ok {
		return false
	}
	for _, src := range s.mysql {
		if src.uuid == uuid {
			for _, iv := range src.intervals {
				if n >= iv[0] && n <= iv[1] {
					return true
				}
			}
		}
	}
	return false
}

// Add puts the transaction with the given GTID into s: MariaDB's becomes
// its domain's last GTID when its sequence number is higher; MySQL's joins
// its uuid's intervals. It reports false for an unparsable GTID, which
// changes nothing.
func (s *GTIDState) Add(gtid string) bool {
	if !isMySQL(gtid) {
		g, err := ParseMariaDBGTID(gtid)
		if err != nil {
			return false
		}
		if last, ok := s.lastOfDomain(g.Domain); !ok || g.Seq > last.Seq {
			s.addMariaDB(g)
		}
		return true
	}
	uuid, n, ok := splitMySQLGTID(gtid)
	if !ok {
		return false
	}
	s.addMySQL(uuid, n, n)
	return true
}

// AddBefore puts into s every transaction before the one with the given
// GTID from the same origin, not that one: MariaDB's domain up to the
// sequence number below it, MySQL's uuid from 1 to the number below it.
// It reports false for an unparsable GTID, which changes nothing.
func (s *GTIDState) AddBefore(gtid string) bool {
	if !isMySQL(gtid) {
		g, err := ParseMariaDBGTID(gtid)
		if err != nil {
			return false
		}
		if g.Seq > 1 {
			prev := g
			prev.Seq--
			if last, ok := s.lastOfDomain(g.Domain); !ok || prev.Seq > last.Seq {
				s.addMariaDB(prev)
			}
		}
		return true
	}
	uuid, n, ok := splitMySQLGTID(gtid)
	if !ok {
		return false
	}
	if n > 1 {
		s.addMySQL(uuid, 1, n-1)
	}
	return true
}

// Merge adds every transaction of o to s (for MariaDB, per domain the GTID
// with the higher sequence number).
func (s *GTIDState) Merge(o GTIDState) {
	for _, g := range o.mariadb {
		if last, ok := s.lastOfDomain(g.Domain); !ok || g.Seq > last.Seq {
			s.addMariaDB(g)
		}
	}
	for _, src := range o.mysql {
		for _, iv := range src.intervals {
			s.addMySQL(src.uuid, iv[0], iv[1])
		}
	}
}

// Missing returns the part of o that s does not hold, rendered for a
// person ("" when s holds all of o): MariaDB domains whose sequence number
// in s is lower than in o (or absent), MySQL intervals not in s.
func (s GTIDState) Missing(o GTIDState) string {
	var missing []string
	for _, g := range o.mariadb {
		last, ok := s.lastOfDomain(g.Domain)
		switch {
		case !ok:
			missing = append(missing, fmt.Sprintf("domain %d up to %s (the server has none of that domain)", g.Domain, g))
		case last.Seq < g.Seq:
			missing = append(missing, fmt.Sprintf("domain %d from %d to %s (the server has up to %s)", g.Domain, last.Seq+1, g, last))
		}
	}
	for _, src := range o.mysql {
		var have [][2]uint64
		for _, m := range s.mysql {
			if m.uuid == src.uuid {
				have = m.intervals
			}
		}
		for _, iv := range src.intervals {
			if n, ok := firstUncovered(have, iv); ok {
				missing = append(missing, fmt.Sprintf("%s:%d and maybe more of %s:%d-%d", src.uuid, n, src.uuid, iv[0], iv[1]))
			}
		}
	}
	return strings.Join(missing, "; ")
}

// firstUncovered returns the first number of iv that none of the sorted,
// disjoint intervals have holds.
func firstUncovered(have [][2]uint64, iv [2]uint64) (uint64, bool) {
	next := iv[0]
	for _, h := range have {
		if h[1] < next {
			continue
		}
		if h[0] > next {
			return next, true
		}
		if h[1] >= iv[1] {
			return 0, false
		}
		next = h[1] + 1
	}
	return next, next <= iv[1]
}

func (s GTIDState) lastOfDomain(domain uint32) (MariaDBGTID, bool) {
	for _, g := range s.mariadb {
		if g.Domain == domain {
			return g, true
		}
	}
	return MariaDBGTID{}, false
}

// addMariaDB makes g its domain's last GTID.
func (s *GTIDState) addMariaDB(g MariaDBGTID) {
	for i := range s.mariadb {
		if s.mariadb[i].Domain == g.Domain {
			s.mariadb[i] = g
			return
		}
	}
	s.mariadb = append(s.mariadb, g)
	slices.SortFunc(s.mariadb, func(a, b MariaDBGTID) int { return int(int64(a.Domain) - int64(b.Domain)) })
}

// addMySQL adds the interval [a, b] to uuid's intervals, merging
// neighbours.
func (s *GTIDState) addMySQL(uuid string, a, b uint64) {
	i := slices.IndexFunc(s.mysql, func(m mysqlSource) bool { return m.uuid == uuid })
	if i < 0 {
		s.mysql = append(s.mysql, mysqlSource{uuid: uuid})
		slices.SortFunc(s.mysql, func(x, y mysqlSource) int { return strings.Compare(x.uuid, y.uuid) })
		i = slices.IndexFunc(s.mysql, func(m mysqlSource) bool { return m.uuid == uuid })
	}
	ivs := append(s.mysql[i].intervals, [2]uint64{a, b})
	slices.SortFunc(ivs, func(x, y [2]uint64) int {
		switch {
		case x[0] < y[0]:
			return -1
		case x[0] > y[0]:
			return 1
		}
		return 0
	})
	merged := ivs[:1]
	for _, iv := range ivs[1:] {
		last := &merged[len(merged)-1]
		if iv[0] <= last[1]+1 {
			last[1] = max(last[1], iv[1])
			continue
		}
		merged = append(merged, iv)
	}
	s.mysql[i].intervals = merged
}

// splitMySQLGTID splits "uuid:n".
func splitMySQLGTID(gtid string) (string, uint64, bool) {
	uuid, num, ok := strings.Cut(strings.TrimSpace(gtid), ":")
	if !ok || len(uuid) != 36 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return "", 0, false
	}
	return strings.ToLower(uuid), n, true
}
