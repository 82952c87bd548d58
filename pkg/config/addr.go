package config

import (
	"net"
	"path"
	"path/filepath"
	"slices"
	"strings"
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
// (path.Match), so the pattern's dot always separates database from table,
// even for names that themselves contain a dot; an invalid pattern matches
// nothing (Validate reports it).
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
	dp, tp, ok := strings.Cut(pattern, ".")
	if !ok {
		return false
	}
	okDB, err := path.Match(dp, db)
	if err != nil || !okDB {
		return false
	}
	okTable, err := path.Match(tp, table)
	return err == nil && okTable
}

// redactedSecret replaces secrets in Redacted.
const redactedSecret = "***"

// Redacted returns a deep copy of c safe to log: non-empty passwords (Mysql,
// Redis, and a password inside a Stan.Host URL) are replaced by "***". Empty
// passwords stay empty so the log still shows that none is set.
func (c *Config) Redacted() Config {
	r := *c
	if r.Mysql.Password != "" {
		r.Mysql.Password = redactedSecret
	}
	if r.Redis.Password != "" {
		r.Redis.Password = redactedSecret
	}
	r.Stan.Host = redactURLUser(r.Stan.Host)
	r.Tables.Include = slices.Clone(c.Tables.Include)
	r.Tables.Exclude = slices.Clone(c.Tables.Exclude)
	if c.Batch.FlushWhenIdle != nil {
		b := *c.Batch.FlushWhenIdle
		r.Batch.FlushWhenIdle = &b
	}
	return r
}

// redactURLUser hides the credentials in "scheme://user:pass@host": the
// password becomes "***", and a lone user (a token) becomes "***".
func redactURLUser(h string) string {
	prefix, rest := "", h
	if scheme, after, ok := strings.Cut(h, "://"); ok {
		prefix, rest = scheme+"://", after
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return h
	}
	user := redactedSecret
	if name, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
		user = name + ":" + redactedSecret
	}
	return prefix + user + "@" + rest[at+1:]
}
