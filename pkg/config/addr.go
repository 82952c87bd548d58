package config

import (
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dbsync/dbsync/pkg/redact"
)

// MysqlAddr returns the source server's "host:port" (IPv6 hosts bracketed).
func (c *Config) MysqlAddr() string {
	return hostPort(c.Mysql.Host, c.Mysql.Port)
}

// RedisAddr returns the redis checkpoint store's "host:port".
func (c *Config) RedisAddr() string {
	return hostPort(c.Redis.Host, c.Redis.Port)
}

func hostPort(host string, port Port) string {
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), string(port))
}

// StanURL returns the NATS URL for Stan: "nats://host:port". Stan.Host may be
// a URL ("nats://nats.default.svc.cluster.local", "tls://…") or a bare host;
// a scheme given in Host is kept, and a port given in Host wins over
// Stan.Port.
func (c *Config) StanURL() string {
	h := strings.TrimSpace(c.Stan.Host)
	scheme := "nats"
	if s, rest, ok := strings.Cut(h, "://"); ok {
		scheme, h = s, rest
	}
	h = strings.TrimSuffix(h, "/")
	userinfo := ""
	if at := strings.LastIndex(h, "@"); at >= 0 {
		userinfo, h = h[:at+1], h[at+1:]
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		return scheme + "://" + userinfo + h
	}
	return scheme + "://" + userinfo + hostPort(h, c.Stan.Port)
}

// StreamSubjects returns the subjects a JetStream stream must capture:
// ProName + "*.*" (with JetStream, ProName ends with ".").
func (c *Config) StreamSubjects() []string {
	return []string{c.ProName + "*.*"}
}

// DeadLetter returns the subject of the markers of skipped changes:
// Tables.DeadLetterSubject, or ProName + "_dbsync.deadletter".
func (c *Config) DeadLetter() string {
	if c.Tables.DeadLetterSubject != "" {
		return c.Tables.DeadLetterSubject
	}
	return c.ProName + DefaultDeadLetterSubject
}

// DescribeStartAt says in words where a first start (no checkpoint) begins:
// the server's current position, or with Mysql.StartAt "oldest" its oldest
// binlog.
func (c *Config) DescribeStartAt() string {
	if c.Mysql.StartAt == "oldest" {
		return "the oldest binlog the server has (Mysql.StartAt=oldest)"
	}
	return "the server's current position"
}

// BoltPath returns the bolt checkpoint file: Bolt.File joined to DataDir when
// File is relative and DataDir is set, else Bolt.File as given.
func (c *Config) BoltPath() string {
	if c.DataDir == "" || filepath.IsAbs(c.Bolt.File) {
		return c.Bolt.File
	}
	return filepath.Join(c.DataDir, c.Bolt.File)
}

// Subject returns the broker subject of a table: ProName + db + "." + table.
func (c *Config) Subject(db, table string) string {
	return c.ProName + db + "." + table
}

// Match reports whether table db.table is streamed: false if any Exclude
// pattern matches; otherwise true if Include is empty or any Include pattern
// matches. The database and table parts of a pattern are matched separately
// (see ParseTablePattern), so the pattern's dot always separates database
// from table; an invalid pattern matches nothing (Validate reports it).
func (t Tables) Match(db, table string) bool {
	for _, p := range t.Exclude {
		if matchTable(p, db, table) {
			return false
		}
	}
	if len(t.Include) == 0 {
		return true
	}
	for _, p := range t.Include {
		if matchTable(p, db, table) {
			return true
		}
	}
	return false
}

func matchTable(pattern, db, table string) bool {
	tp, err := ParseTablePattern(pattern)
	return err == nil && tp.Match(db, table)
}

// TablePattern is a parsed "db.table" pattern.
type TablePattern struct {
	// DB and Table are path.Match globs, or literal names when quoted.
	DB, Table               string
	dbLiteral, tableLiteral bool
}

// ParseTablePattern parses "db.table": each part is a path.Match glob ('*',
// '?', '[a-z]'), or a literal name in backquotes, as MySQL quotes
// identifiers (a backquote inside is doubled). Quoting is how a pattern names
// a database or table whose name holds a dot or a glob character:
// "shop.`orders.2024`", "`my.db`.*". The first unquoted dot separates the
// database from the table; there must be exactly one.
func ParseTablePattern(p string) (TablePattern, error) {
	db, rest, dbLit, err := cutPatternPart(p)
	if err != nil {
		return TablePattern{}, err
	}
	if !strings.HasPrefix(rest, ".") {
		return TablePattern{}, fmt.Errorf("must be \"db.table\" with exactly one '.' between them, e.g. \"shop.*\" or \"*.tmp_*\" (quote a name holding a dot in backquotes: \"shop.`a.b`\")")
	}
	table, rest, tableLit, err := cutPatternPart(rest[1:])
	if err != nil {
		return TablePattern{}, err
	}
	if rest != "" {
		return TablePattern{}, fmt.Errorf("must be \"db.table\" with exactly one '.' between them, e.g. \"shop.*\" (quote a name holding a dot in backquotes: \"shop.`a.b`\")")
	}
	if db == "" && !dbLit || table == "" && !tableLit {
		return TablePattern{}, errors.New("has an empty database or table part; use '*' to match any")
	}
	for _, part := range []struct {
		glob string
		lit  bool
	}{{db, dbLit}, {table, tableLit}} {
		if part.lit {
			continue
		}
		if _, err := path.Match(part.glob, ""); err != nil {
			return TablePattern{}, fmt.Errorf("is not a valid glob (path.Match syntax: '*', '?', '[a-z]'; quote a literal name in backquotes): %v", err)
		}
	}
	return TablePattern{DB: db, Table: table, dbLiteral: dbLit, tableLiteral: tableLit}, nil
}

// cutPatternPart reads one part of a table pattern: a backquoted literal or
// an unquoted glob up to the next dot.
func cutPatternPart(s string) (part, rest string, literal bool, err error) {
	if !strings.HasPrefix(s, "`") {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			i = len(s)
		}
		if strings.Contains(s[:i], "`") {
			return "", "", false, errors.New("has a backquote inside a name; quote the whole name: `name`")
		}
		return s[:i], s[i:], false, nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '`' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '`' {
			b.WriteByte('`')
			i++
			continue
		}
		return b.String(), s[i+1:], true, nil
	}
	return "", "", false, errors.New("has an unclosed backquote")
}

// Match reports whether the pattern matches table db.table.
func (p TablePattern) Match(db, table string) bool {
	return matchPart(p.DB, p.dbLiteral, db) && matchPart(p.Table, p.tableLiteral, table)
}

// exact reports whether the pattern names one table (no glob).
func (p TablePattern) exact() bool {
	return (p.dbLiteral || !strings.ContainsAny(p.DB, "*?[\\")) && (p.tableLiteral || !strings.ContainsAny(p.Table, "*?[\\"))
}

func matchPart(glob string, literal bool, name string) bool {
	if literal {
		return glob == name
	}
	ok, err := path.Match(glob, name)
	return err == nil && ok
}

// Redacted returns a deep copy of c safe to log: non-empty passwords and
// tokens are replaced by redact.Mask, and so are the credentials inside
// Stan.Host and JetStream.URL. Empty ones stay empty so the log still shows
// that none is set.
func (c *Config) Redacted() Config {
	r := *c
	for _, p := range r.secretPairs() {
		if *p.value != "" {
			*p.value = redact.Mask
		}
	}
	r.Stan.Host = redact.URL(r.Stan.Host)
	r.JetStream.URL = redact.URL(r.JetStream.URL)
	r.Tables.Include = slices.Clone(c.Tables.Include)
	r.Tables.Exclude = slices.Clone(c.Tables.Exclude)
	r.Tables.OnUnpublishable = c.Tables.OnUnpublishable.clone()
	if c.Batch.FlushWhenIdle != nil {
		b := *c.Batch.FlushWhenIdle
		r.Batch.FlushWhenIdle = &b
	}
	return r
}
