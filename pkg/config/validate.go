package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/redact"
)

// Allowed values of the enumerated settings. They are functions, not
// variables, so no caller can change them.

// MQNames lists the supported values of MQName.
func MQNames() []string { return []string{"stan", "jetstream", "kafka"} }

// DaoNames lists the supported values of Storage.DaoName.
func DaoNames() []string { return []string{"bolt", "redis", "nats"} }

// Flavors lists the supported values of Mysql.Flavor ("" auto-detects).
func Flavors() []string { return []string{"", "mysql", "mariadb"} }

// StartAts lists the supported values of Mysql.StartAt.
func StartAts() []string { return []string{"current", "oldest"} }

// LogLevels lists the supported values of Log.Level.
func LogLevels() []string { return []string{"trace", "debug", "info", "warn", "error"} }

// LogFormats lists the supported values of Log.Format.
func LogFormats() []string { return []string{"text", "json"} }

const (
	maxBatchRows = 1_000_000
	// maxSnapshotChunkRows bounds Snapshot.ChunkRows: a chunk is held in memory at once.
	maxSnapshotChunkRows = 1_000_000
	minBatchMaxBytes     = 64 << 10
)

// Validate checks every setting and returns nil or one error joining (with
// errors.Join) a *FieldError per problem, each naming its key path, e.g.
// `Mysql.Port: "99999" is not a port (1-65535)`. It does not apply
// defaults: a Config built in code should call ApplyDefaults first.
func (c *Config) Validate() error {
	v := &validator{}

	v.subjectPrefix("ProName", c.ProName)

	// Mysql
	v.required("Mysql.Host", c.Mysql.Host)
	v.host("Mysql.Host", c.Mysql.Host, "Mysql.Port")
	v.port("Mysql.Port", c.Mysql.Port, true)
	for i, h := range c.Mysql.Hosts {
		v.hostPort(fmt.Sprintf("Mysql.Hosts[%d]", i), h)
	}
	v.required("Mysql.Username", c.Mysql.Username)
	if c.Mysql.ServerID == 0 {
		v.add("Mysql.ServerID", "must not be 0; use a replica server id unique among the source's replicas (default %d)", DefaultServerID)
	}
	v.oneOf("Mysql.Flavor", c.Mysql.Flavor, Flavors())
	v.oneOf("Mysql.StartAt", c.Mysql.StartAt, StartAts())
	v.required("Mysql.Charset", c.Mysql.Charset)
	v.positive("Mysql.HeartbeatPeriod", c.Mysql.HeartbeatPeriod)
	v.positive("Mysql.ConnectTimeout", c.Mysql.ConnectTimeout)
	if v.positive("Mysql.ReadTimeout", c.Mysql.ReadTimeout) && c.Mysql.ReadTimeout <= c.Mysql.HeartbeatPeriod {
		v.add("Mysql.ReadTimeout", "%s must be longer than Mysql.HeartbeatPeriod (%s), or an idle connection times out between heartbeats", c.Mysql.ReadTimeout, c.Mysql.HeartbeatPeriod)
	}
	v.tls("Mysql.TLS", c.Mysql.TLS, true)

	// Checkpoint storage
	v.oneOf("Storage.DaoName", c.Storage.DaoName, DaoNames())
	v.required("Storage.PosKey", c.Storage.PosKey)
	switch c.Storage.DaoName {
	case "bolt":
		v.required("Bolt.File", c.Bolt.File)
		v.required("Bolt.Bucket", c.Bolt.Bucket)
		v.positive("Bolt.Timeout", c.Bolt.Timeout)
	case "redis":
		v.required("Redis.Host", c.Redis.Host)
		v.host("Redis.Host", c.Redis.Host, "Redis.Port")
		v.port("Redis.Port", c.Redis.Port, true)
		if c.Redis.DB < 0 {
			v.add("Redis.DB", "%d is negative; use a database number >= 0", c.Redis.DB)
		}
		v.tls("Redis.TLS", c.Redis.TLS, false)
	case "nats":
		if c.JetStream.URL == "" {
			v.add("Storage.DaoName", "\"nats\" keeps the checkpoint in the NATS server JetStream.URL names, and JetStream.URL is empty "+
				"(the embedded server lives and dies with this producer); set JetStream.URL (DBSYNC_JETSTREAM_URL) to a NATS server with JetStream, or use bolt")
		}
		if strings.ContainsAny(c.JetStream.CheckpointBucket, " .*>\t") {
			v.add("JetStream.CheckpointBucket", "%q is not a key-value bucket name (letters, digits, '-' and '_')", c.JetStream.CheckpointBucket)
		}
	}

	// Message queue
	v.oneOf("MQName", c.MQName, MQNames())
	switch c.MQName {
	case "stan":
		v.stanHost("Stan.Host", c.Stan.Host)
		v.port("Stan.Port", c.Stan.Port, true)
		if v.required("Stan.ClusterID", c.Stan.ClusterID) && strings.ContainsAny(c.Stan.ClusterID, " \t\r\n*>") {
			v.add("Stan.ClusterID", "%q contains whitespace or a wildcard ('*', '>'); use the cluster id the NATS Streaming server runs with", c.Stan.ClusterID)
		}
		if v.required("Stan.ClientID", c.Stan.ClientID) {
			if err := mq.CheckStanClientID(c.Stan.ClientID); err != nil {
				v.add("Stan.ClientID", "%q %v", c.Stan.ClientID, err)
			}
		}
		if c.Stan.MaxInflight < 1 {
			v.add("Stan.MaxInflight", "%d must be at least 1 (default %d)", c.Stan.MaxInflight, DefaultMaxInflight)
		}
		v.positive("Stan.AckTimeout", c.Stan.AckTimeout)
		v.natsAuth("Stan.Auth", c.Stan.Auth, false)
		v.tls("Stan.TLS", c.Stan.TLS, false)
	case "jetstream":
		j := c.JetStream
		if j.URL != "" {
			v.stanHost("JetStream.URL", j.URL)
			v.tls("JetStream.TLS", j.TLS, false)
		} else if host, _, err := net.SplitHostPort(j.Listen); err != nil {
			v.add("JetStream.Listen", "%q is not host:port (the embedded server's address; default %s)", j.Listen, DefaultJetStreamListen)
		} else if !isLoopback(host) && j.Auth.Kind() == "" {
			v.add("JetStream.Listen", "%q lets other hosts reach the embedded server, which then needs authentication: set JetStream.Auth "+
				"(User and Password, Token or NKeySeedFile), or listen on 127.0.0.1", j.Listen)
		}
		v.natsAuth("JetStream.Auth", j.Auth, j.URL == "")
		if j.MaxAge < 0 {
			v.add("JetStream.MaxAge", "%s is negative; use a duration such as \"168h\" (default 7 days)", j.MaxAge)
		}
		if j.MaxBytes < 0 {
			v.add("JetStream.MaxBytes", "%d is negative; use a size in bytes, or 0 for no bound but MaxAge", j.MaxBytes)
		}
		if j.MaxStore < 0 {
			v.add("JetStream.MaxStore", "%d is negative; use a size in bytes, or 0 for half the free space of DataDir", j.MaxStore)
		}
		if err := mq.CheckStreamName(j.Stream); err != nil {
			v.add("JetStream.Stream", "%q %v", j.Stream, err)
		}
		v.oneOf("JetStream.Storage", j.Storage, []string{"file", "memory"})
		if j.Replicas < 1 || j.Replicas > 5 {
			v.add("JetStream.Replicas", "%d is out of range 1-5", j.Replicas)
		}
		v.positive("JetStream.DuplicateWindow", j.DuplicateWindow)
		if j.MaxInflight < 1 {
			v.add("JetStream.MaxInflight", "%d must be at least 1 (default %d)", j.MaxInflight, DefaultMaxInflight)
		}
		v.positive("JetStream.AckTimeout", j.AckTimeout)
		if j.MaxPayload < 1024 || j.MaxPayload > 64<<20 {
			v.add("JetStream.MaxPayload", "%d is out of range 1024-%d (64 MiB; default %d)", j.MaxPayload, 64<<20, DefaultNATSMaxPayload)
		} else if j.URL != "" && j.MaxPayload != DefaultNATSMaxPayload {
			v.add("JetStream.MaxPayload", "applies to the embedded server only; with JetStream.URL set, raise max_payload in that NATS server's own config")
		}
		if !strings.HasSuffix(c.ProName, ".") {
			v.add("ProName", "%q must end with '.' with MQName jetstream (the stream captures the subjects ProName+\"*.*\"; default %q)", c.ProName, DefaultJetStreamProName)
		}
	}

	if c.MQName == "kafka" {
		k := c.Kafka
		if len(k.Brokers) == 0 {
			v.add("Kafka.Brokers", "is required with MQName kafka: the seed brokers, e.g. [\"kafka-0:9092\"]")
		}
		for i, b := range k.Brokers {
			v.hostPort(fmt.Sprintf("Kafka.Brokers[%d]", i), b)
		}
		if k.Partitions < 1 || k.Partitions > 10000 {
			v.add("Kafka.Partitions", "%d is out of range 1-10000 (default 1: a table's changes keep commit order)", k.Partitions)
		}
		v.oneOf("Kafka.Key", k.Key, []string{KafkaKeyTable, KafkaKeyPrimaryKey})
		if k.Partitions > 1 && k.Key != KafkaKeyPrimaryKey {
			v.add("Kafka.Partitions", "%d partitions need Kafka.Key \"primary_key\" (records without a key would spread a row's changes over partitions and lose their order); or keep 1 partition per table", k.Partitions)
		}
		if k.ReplicationFactor < -1 || k.ReplicationFactor == 0 || k.ReplicationFactor > 32767 {
			v.add("Kafka.ReplicationFactor", "%d is not -1 (the cluster's default) or a replica count", k.ReplicationFactor)
		}
		if k.Retention < 0 {
			v.add("Kafka.Retention", "%s is negative; use a duration such as \"168h\", or 0 for the cluster's default", k.Retention)
		}
		v.positive("Kafka.AckTimeout", k.AckTimeout)
		if k.SASL.Mechanism != "" {
			v.oneOf("Kafka.SASL.Mechanism", k.SASL.Mechanism, mq.KafkaMechanisms())
			v.required("Kafka.SASL.User", k.SASL.User)
			if k.SASL.Password == "" && k.SASL.PasswordFile == "" {
				v.add("Kafka.SASL.Password", "is required with Kafka.SASL.Mechanism (or Kafka.SASL.PasswordFile)")
			}
		} else if k.SASL.User != "" || k.SASL.Password != "" || k.SASL.PasswordFile != "" {
			v.add("Kafka.SASL.Mechanism", "is empty, but Kafka.SASL has credentials: set it to one of %s", strings.Join(mq.KafkaMechanisms(), ", "))
		}
		v.tls("Kafka.TLS", k.TLS, false)
	}

	// Operations listener
	if !c.HTTP.Disabled {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			v.add("HTTP.Listen", "%q is not host:port or :port (default %s; HTTP.Disabled switches it off)", c.HTTP.Listen, DefaultHTTPListen)
		}
	}
	v.positive("HTTP.StallTimeout", c.HTTP.StallTimeout)

	// Batching
	if c.Batch.MaxRows < 1 || c.Batch.MaxRows > maxBatchRows {
		v.add("Batch.MaxRows", "%d is out of range 1-%d (default %d)", c.Batch.MaxRows, maxBatchRows, DefaultBatchMaxRows)
	}
	v.positive("Batch.MaxWait", c.Batch.MaxWait)
	if c.Batch.MaxBytes < minBatchMaxBytes {
		v.add("Batch.MaxBytes", "%d is below the minimum %d (64 KiB; default %d = 16 MiB)", c.Batch.MaxBytes, minBatchMaxBytes, DefaultBatchMaxBytes)
	}

	// Table filter
	for i, p := range c.Tables.Include {
		v.tablePattern(fmt.Sprintf("Tables.Include[%d]", i), p)
	}
	for i, p := range c.Tables.Exclude {
		v.tablePattern(fmt.Sprintf("Tables.Exclude[%d]", i), p)
	}
	v.tablePolicy("Tables.OnUnpublishable", c.Tables.OnUnpublishable)
	v.deadLetterSubject("Tables.DeadLetterSubject", c.DeadLetter(), c)
	if c.Memory.Budget < 2*c.Batch.MaxBytes {
		v.add("Memory.Budget", "%d is below twice Batch.MaxBytes (%d): a full batch could not be sent while the next one fills (default %d = 64 MiB)",
			c.Memory.Budget, 2*c.Batch.MaxBytes, DefaultMemoryBudget)
	}

	// High availability
	if c.HA.LeaseTTL < Duration(time.Second) {
		v.add("HA.LeaseTTL", "%s is below 1s (default 15s)", c.HA.LeaseTTL.Duration())
	}
	if c.HA.Standby && c.Storage.DaoName == "bolt" {
		v.add("HA.Standby", "a standby needs a checkpoint store the replicas share, and bolt is a local file: set Storage.DaoName to nats or redis")
	}

	// Snapshot
	v.oneOf("Snapshot.Mode", c.Snapshot.Mode, []string{SnapshotNever, SnapshotInitial, SnapshotWhenNeeded})
	v.oneOf("Snapshot.Keyless", c.Snapshot.Keyless, []string{KeylessRead, KeylessRefuse})
	if c.Snapshot.ChunkRows < 1 || c.Snapshot.ChunkRows > maxSnapshotChunkRows {
		v.add("Snapshot.ChunkRows", "%d is out of range 1-%d (default %d)", c.Snapshot.ChunkRows, maxSnapshotChunkRows, DefaultSnapshotChunkRows)
	}
	if c.Snapshot.Pause < 0 {
		v.add("Snapshot.Pause", "%s is negative (default 0: no pause between chunks)", c.Snapshot.Pause.Duration())
	}

	// Logging
	v.oneOf("Log.Level", c.Log.Level, LogLevels())
	v.oneOf("Log.Format", c.Log.Format, LogFormats())

	return errors.Join(v.errs...)
}

// validator accumulates FieldErrors; its checks return whether they passed
// so dependent checks can be skipped.
type validator struct{ errs []error }

// maxShownValue bounds how much of a value a problem quotes.
const maxShownValue = 100

// add records a problem; string values longer than maxShownValue are cut.
func (v *validator) add(key, format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > maxShownValue {
			args[i] = s[:maxShownValue] + "..."
		}
	}
	v.errs = append(v.errs, &FieldError{Key: key, Problem: fmt.Sprintf(format, args...)})
}

// tls checks a TLS section; Mode "preferred" only where allowPreferred.
func (v *validator) tls(key string, t TLS, allowPreferred bool) {
	modes := TLSModes()
	if !allowPreferred {
		modes = slices.DeleteFunc(slices.Clone(modes), func(m string) bool { return m == TLSPreferred })
	}
	if t.Mode != "" {
		v.oneOf(key+".Mode", t.Mode, modes)
	}
	if (t.Cert == "") != (t.Key == "") {
		v.add(key, "Cert and Key go together: set both (the client certificate and its key) or neither")
	}
	for _, f := range []struct{ name, path string }{{"CA", t.CA}, {"Cert", t.Cert}, {"Key", t.Key}} {
		v.readable(key+"."+f.name, f.path)
	}
}

// natsAuth checks a NATS authentication section; embedded is true for the
// embedded server, which cannot check credentials files (JWTs).
func (v *validator) natsAuth(key string, a NATSAuth, embedded bool) {
	var kinds []string
	if a.User != "" || a.Password != "" || a.PasswordFile != "" {
		kinds = append(kinds, "User/Password")
		if a.User == "" {
			v.add(key+".User", "is required with a password")
		}
		if a.Password == "" && a.PasswordFile == "" {
			v.add(key+".Password", "is required with User (or PasswordFile)")
		}
	}
	if a.Token != "" || a.TokenFile != "" {
		kinds = append(kinds, "Token")
	}
	if a.NKeySeedFile != "" {
		kinds = append(kinds, "NKeySeedFile")
		v.readable(key+".NKeySeedFile", a.NKeySeedFile)
	}
	if a.CredsFile != "" {
		kinds = append(kinds, "CredsFile")
		v.readable(key+".CredsFile", a.CredsFile)
		if embedded {
			v.add(key+".CredsFile", "the embedded server cannot check credentials files (they need a NATS operator); use User and Password, Token or NKeySeedFile")
		}
	}
	if len(kinds) > 1 {
		v.add(key, "sets %s; use one way to authenticate", strings.Join(kinds, " and "))
	}
}

// readable checks that a file setting names a readable file.
func (v *validator) readable(key, path string) {
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		v.add(key, "cannot read %q: %v", path, unwrapPathError(err))
		return
	}
	f.Close()
}

// isLoopback reports whether host only listens on this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) required(key, val string) bool {
	if strings.TrimSpace(val) == "" {
		v.add(key, "is required")
		return false
	}
	return true
}

func (v *validator) oneOf(key, val string, allowed []string) bool {
	if slices.Contains(allowed, val) {
		return true
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	v.add(key, "%q is not one of %s", val, strings.Join(quoted, ", "))
	return false
}

func (v *validator) port(key string, p Port, required bool) bool {
	if p == "" && !required {
		return true
	}
	if _, err := p.Int(); err != nil {
		v.add(key, "%s", err.Error())
		return false
	}
	return true
}

func (v *validator) positive(key string, d Duration) bool {
	if d <= 0 {
		v.add(key, "%s must be positive, e.g. \"3s\" or \"500ms\"", time.Duration(d))
		return false
	}
	return true
}

// host rejects a host that carries its own port (the port has its own key).
func (v *validator) host(key, h, portKey string) {
	if h == "" {
		return
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		v.add(key, "%q includes a port; put the host alone here and the port in %s", h, portKey)
		return
	}
	if strings.Contains(h, "://") || strings.ContainsAny(h, " \t/") {
		v.add(key, "%q is not a host name or IP address", h)
	}
}

// hostPort accepts "host:port" with a numeric port.
func (v *validator) hostPort(key, hp string) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(hp))
	if err != nil || host == "" || strings.Contains(hp, "://") || strings.ContainsAny(host, " \t/") {
		v.add(key, "%q is not host:port (e.g. \"db-replica:3306\")", hp)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add(key, "%q: %q is not a port (1-65535)", hp, port)
	}
}

// stanHost accepts "nats://host", "nats://host:port", "tls://…" or a bare
// host (optionally with a port).
func (v *validator) stanHost(key, h string) {
	if !v.required(key, h) {
		return
	}
	shown := redact.URL(h) // credentials in the URL are never echoed
	if strings.Contains(h, "://") {
		u, err := url.Parse(h)
		if err != nil {
			v.add(key, "%q is not a URL", shown)
			return
		}
		if u.Scheme != "nats" && u.Scheme != "tls" {
			v.add(key, "%q: scheme %q is not supported; use nats:// or tls://", shown, u.Scheme)
		}
		if u.Hostname() == "" {
			v.add(key, "%q has no host; use e.g. nats://127.0.0.1", shown)
		}
		if u.Path != "" && u.Path != "/" {
			v.add(key, "%q has a path %q; use scheme://host[:port] only", shown, u.Path)
		}
		return
	}
	if strings.ContainsAny(h, " \t/@") {
		v.add(key, "%q is not a host name, IP address or nats:// URL", shown)
	}
}

// subjectPrefix rejects prefixes that would make invalid NATS subjects.
func (v *validator) subjectPrefix(key, p string) {
	if p == "" {
		return
	}
	if strings.ContainsAny(p, " \t\r\n*>") || strings.HasPrefix(p, ".") || strings.Contains(p, "..") {
		v.add(key, "%q would make invalid subjects (no whitespace, '*', '>', leading '.' or empty tokens); subjects are ProName + db + \".\" + table", p)
	}
}

// tablePolicy checks Tables.OnUnpublishable.
func (v *validator) tablePolicy(key string, p TablePolicy) {
	policies := []string{PolicyStop, PolicySkip}
	if p.ByTable == nil {
		v.oneOf(key, p.All, policies)
		return
	}
	patterns := make([]string, 0, len(p.ByTable))
	for pattern := range p.ByTable {
		patterns = append(patterns, pattern)
	}
	slices.Sort(patterns)
	for _, pattern := range patterns {
		k := fmt.Sprintf("%s[%q]", key, pattern)
		if v.tablePattern(k, pattern) {
			v.oneOf(k, p.ByTable[pattern], policies)
		}
	}
}

// deadLetterSubject checks that the dead-letter subject is a literal
// subject the JetStream stream captures.
func (v *validator) deadLetterSubject(key, subj string, c *Config) {
	toks := strings.Split(subj, ".")
	for _, tok := range toks {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			v.add(key, "%q is not a literal subject (no empty tokens, wildcards or whitespace; default ProName+%q)", subj, DefaultDeadLetterSubject)
			return
		}
	}
	if c.MQName == "jetstream" && (!strings.HasPrefix(subj, c.ProName) || len(toks) != strings.Count(c.ProName, ".")+2) {
		v.add(key, "%q must be ProName followed by two tokens (%q), so the producer's stream captures it", subj, c.ProName+DefaultDeadLetterSubject)
	}
}

// tablePattern checks a "db.table" pattern (ParseTablePattern).
func (v *validator) tablePattern(key, p string) bool {
	if _, err := ParseTablePattern(p); err != nil {
		v.add(key, "%q %v", p, err)
		return false
	}
	return true
}
