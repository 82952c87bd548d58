package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/storage"
)

// Config is dbsync's configuration, as read from config.json. Field names are
// the JSON keys (matched case-insensitively).
type Config struct {
	// Version is informational (the seed format carries "1.0.0").
	Version string
	// ProName prefixes every subject: subject = ProName + db + "." + table.
	// Default "" (no prefix) with NATS Streaming, "dbsync." with JetStream
	// (where it must end with ".").
	ProName string
	// DataDir is the directory for local state; a relative Bolt.File is
	// resolved against it. Default "" means the working directory.
	DataDir string
	Mysql   Mysql
	Storage Storage
	Bolt    Bolt
	Redis   Redis
	// MQName selects the message queue: "stan" (the default when empty),
	// "jetstream" or "kafka".
	MQName    string
	Stan      Stan
	JetStream JetStream
	Kafka     Kafka
	Batch     Batch
	Memory    Memory
	Tables    Tables
	Snapshot  Snapshot
	HA        HA
	Log       Log
	HTTP      HTTP
}

// Memory bounds what the producer holds in memory.
type Memory struct {
	// Budget bounds, in bytes, the encoded row changes between the binlog
	// reader and the broker's acknowledgement (read-ahead, the batch being
	// filled and the batches in flight share it); the reader waits while it
	// is used up. Default 64 MiB; at least 2 x Batch.MaxBytes. A single
	// change larger than the budget still goes through, alone.
	Budget int
}

// Snapshot says when the producer publishes tables' existing rows (type
// "read"), besides the changes: on a first start (Mode), and on demand
// ("producer snapshot start db.table ...").
type Snapshot struct {
	// Mode is "never" (the default: a first start publishes only changes
	// made from then on), "initial" (a first start publishes every
	// included table's rows, then streams) or "when_needed" (the same: a
	// snapshot whenever there is no checkpoint).
	Mode string
	// ChunkRows is how many rows one chunk reads (default 4096).
	ChunkRows int
	// Pause is a wait between chunks, so a busy primary is not saturated
	// (default 0).
	Pause Duration
	// Keyless is what happens to a table with neither a primary key nor a
	// unique key over NOT NULL columns: "read" (the default: read in one
	// go, with a warning; its rows are held in memory at once) or
	// "refuse".
	Keyless string
}

// HA runs several producer replicas for one source, exactly one of which
// streams: the holder of the checkpoint store's lease (Storage.DaoName
// redis or nats).
type HA struct {
	// Standby makes a producer that finds the lease held wait, ready, and
	// take over when the lease lapses, instead of stopping (default
	// false).
	Standby bool
	// LeaseTTL is how long the lease outlives a holder that stopped
	// renewing it (crashed, frozen, cut off): a standby takes over within
	// about 4/3 of it. Default 15s.
	LeaseTTL Duration
}

// Snapshot modes and keyless policies.
const (
	SnapshotNever      = "never"
	SnapshotInitial    = "initial"
	SnapshotWhenNeeded = "when_needed"
	KeylessRead        = "read"
	KeylessRefuse      = "refuse"
)

// Mysql is the source server dbsync reads the binlog from, posing as a
// replica.
type Mysql struct {
	Host string
	Port Port
	// Hosts are the other servers of the source's replication topology
	// ("host:port" each), which the producer connects to, in order, when
	// the server it streams from does not answer. A server other than the
	// checkpoint's is resumed on by GTID (a promoted replica with
	// log_slave_updates=ON); see docs/operations.md, "Source failover".
	Hosts    []string
	Username string
	Password string `secret:"true"`
	// PasswordFile is a file holding the password (a Kubernetes Secret
	// volume), instead of Password.
	PasswordFile string
	// TLS secures the connections to the server; Mode defaults to
	// "preferred", as for the MySQL client.
	TLS TLS
	// ServerID is the replica server id dbsync registers with; it must be
	// unique among the source's replicas. Default 1001; 0 is invalid.
	ServerID uint32
	// Flavor is "" (auto-detect), "mysql" or "mariadb".
	Flavor string
	// StartAt says where to start when there is no checkpoint: "current"
	// (the server's current position, default) or "oldest" (the oldest
	// binlog the server still has).
	StartAt string
	// Charset of the connection; default "utf8mb4".
	Charset string
	// HeartbeatPeriod asks the server for a heartbeat when idle; default 10s.
	HeartbeatPeriod Duration
	// ReadTimeout is how long a read may block; default 30s, must exceed
	// HeartbeatPeriod.
	ReadTimeout Duration
	// ConnectTimeout bounds dialing the server; default 10s.
	ConnectTimeout Duration
}

// Storage selects the checkpoint store.
type Storage struct {
	// DaoName is "bolt" (default), "redis" or "nats" (a key-value bucket
	// of the NATS server JetStream.URL names, with JetStream.Auth and
	// JetStream.TLS; see JetStream.CheckpointBucket).
	DaoName string
	// PosKey is the key the checkpoint is stored under; default "key".
	PosKey string
}

// Kafka configures the Kafka broker (MQName "kafka"). Each table's changes
// go to the topic named from its subject (ProName + db + "." + table) by
// mq.KafkaTopic: letters, digits, '.' and '-' stay, '_' becomes "__", any
// other byte "_xx".
type Kafka struct {
	// Brokers are the seed brokers, "host:port" each.
	Brokers []string
	// ClientID names the producer to the brokers; default "dbsync".
	ClientID string
	// Partitions, ReplicationFactor and Retention are those of the topics
	// the producer creates when missing: default 1 partition (a table's
	// changes keep commit order), the cluster's default replication
	// factor (-1) and retention (0). An existing topic with another
	// partition count is reported, never changed.
	Partitions        int
	ReplicationFactor int
	Retention         Duration
	// AckTimeout bounds the wait for a record's acknowledgement by every
	// in-sync replica (acks=all); default 30s.
	AckTimeout Duration
	// Key is "table" (default: records carry no key, a table's topic has
	// one partition, a table's changes keep commit order) or
	// "primary_key": each record is keyed by its row's primary key, so
	// with Partitions above 1 a row's changes keep their order but a
	// table's are spread (as Debezium does).
	Key string
	// SASL authenticates: Mechanism "PLAIN", "SCRAM-SHA-256" or
	// "SCRAM-SHA-512" (empty: none) with User and Password (or
	// PasswordFile).
	SASL KafkaSASL
	// TLS secures the connections (off unless Mode, CA or Cert is set).
	TLS TLS
}

// KafkaSASL is a SASL mechanism and its credentials.
type KafkaSASL struct {
	Mechanism string
	User      string
	Password  string `secret:"true"`
	// PasswordFile is a file holding the password, instead of Password.
	PasswordFile string
}

// Bolt configures the bolt checkpoint file.
type Bolt struct {
	// File is the database file; default "pos.db", relative to DataDir.
	File string
	// Bucket is the bucket holding the checkpoint; default "pos".
	Bucket string
	// Timeout is how long to wait for the file lock; default 1s.
	Timeout Duration
}

// Redis configures the redis checkpoint store; required only when
// Storage.DaoName is "redis".
type Redis struct {
	Host string
	Port Port
	// Username is the ACL user; empty means "default".
	Username string
	Password string `secret:"true"`
	// PasswordFile is a file holding the password, instead of Password.
	PasswordFile string
	DB           int
	// TLS secures the connection (Mode "disabled" unless CA or Cert is set).
	TLS TLS
}

// Stan configures the NATS Streaming connection.
type Stan struct {
	// Host is "nats://host", "nats://host:port" or a bare host name.
	Host      string
	Port      Port
	ClusterID string
	// ClientID must be unique per connection: letters, digits, '-', '_'.
	ClientID string
	// MaxInflight bounds unacknowledged publishes; default 4096.
	MaxInflight int
	// AckTimeout is how long to wait for a publish ack; default 30s.
	AckTimeout Duration
	// Auth and TLS are how to authenticate to the NATS server and secure
	// the connection.
	Auth NATSAuth
	TLS  TLS
}

// JetStream configures the NATS JetStream broker (MQName "jetstream").
type JetStream struct {
	// URL of the NATS server, e.g. "nats://nats:4222". Empty starts an
	// embedded NATS server with JetStream inside the producer (data under
	// DataDir/nats), listening on Listen.
	URL string
	// Listen is the embedded server's address; default "127.0.0.1:4222".
	Listen string
	// Stream is the stream holding the changes; default "DBSYNC". It is
	// created when missing; an existing one must agree with these settings.
	Stream string
	// CheckpointBucket is the key-value bucket of the checkpoint with
	// Storage.DaoName "nats" (created with JetStream.Replicas replicas;
	// its leases live in CheckpointBucket+"_LEASE"); default
	// "DBSYNC_CHECKPOINT".
	CheckpointBucket string
	// Storage is "file" (default) or "memory".
	Storage string
	// Replicas of the stream; default 1.
	Replicas int
	// DuplicateWindow is how long the stream remembers message ids to drop
	// a replayed message; default 2m. Keep it longer than a producer
	// restart takes.
	DuplicateWindow Duration
	// MaxInflight bounds unacknowledged publishes; default 4096.
	MaxInflight int
	// AckTimeout is how long to wait for a publish ack; default 30s.
	AckTimeout Duration
	// MaxPayload is the embedded server's max_payload in bytes (the
	// largest message it accepts); default 1 MiB, NATS' own default. Only
	// for the embedded server: an external server's is in its own config.
	MaxPayload int
	// MaxAge is how long a created stream keeps a message; default 7 days.
	// Consumers must read a change within it.
	MaxAge Duration
	// MaxBytes bounds a created stream's size; 0 (default) means no bound
	// but MaxAge. A full stream refuses new messages (nothing is dropped):
	// the producer waits and retries.
	MaxBytes int64
	// MaxStore bounds the embedded server's JetStream storage; 0 (default)
	// means half the free space of DataDir's filesystem at start.
	MaxStore int64
	// Auth is how to authenticate to the NATS server; with the embedded
	// server (no URL), the server requires it of every client. TLS
	// secures the connection to an external server.
	Auth NATSAuth
	TLS  TLS
}

// TLS secures the connection to a server.
type TLS struct {
	// Mode is "disabled", "preferred" (MySQL only: TLS when the server
	// offers it), "required" (TLS, the certificate not checked),
	// "verify_ca" (TLS, the certificate signed by CA) or "verify_identity"
	// (verify_ca, and the certificate names the server). Empty:
	// "verify_identity" when CA or Cert is set (or, for NATS and Redis, the
	// URL's scheme is tls://), else "preferred" for MySQL and "disabled"
	// for NATS and Redis.
	Mode string
	// CA is a PEM file of the certificate authorities to trust; empty
	// means the system's.
	CA string
	// Cert and Key are the client certificate and its key (PEM files), for
	// servers that check clients.
	Cert string
	Key  string
	// ServerName is the name the server's certificate must carry; default
	// the host connected to.
	ServerName string
}

// NATSAuth is how dbsync authenticates to a NATS server: at most one of
// User and Password, Token, NKeySeedFile and CredsFile.
type NATSAuth struct {
	User     string
	Password string `secret:"true"`
	// PasswordFile is a file holding the password, instead of Password.
	PasswordFile string
	Token        string `secret:"true"`
	// TokenFile is a file holding the token, instead of Token.
	TokenFile string
	// NKeySeedFile is a file holding the user's nkey seed ("SU...").
	NKeySeedFile string
	// CredsFile is a NATS credentials file (a user JWT and its nkey seed).
	CredsFile string
}

// HTTP is the operations listener: /metrics (Prometheus), /livez, /readyz.
type HTTP struct {
	// Listen is the address; default ":8080".
	Listen string
	// Pprof serves Go's profiles under /debug/pprof/; default off (they
	// expose internals and cost CPU).
	Pprof bool
	// Disabled switches the listener off.
	Disabled bool
	// StallTimeout: when the source has moved on but nothing was published
	// for this long, /readyz fails and dbsync_stalled is 1; default 60s.
	StallTimeout Duration
}

// Batch bounds how many row changes are published before a checkpoint.
type Batch struct {
	// MaxRows flushes a batch at this many rows; default 1024.
	MaxRows int
	// MaxWait flushes a batch this long after its first row; default 3s.
	MaxWait Duration
	// FlushWhenIdle flushes as soon as the binlog stream goes idle; default
	// true. Read it with Batch.FlushIdle.
	FlushWhenIdle *bool
	// MaxBytes is the memory budget of a batch; default 16 MiB, at least
	// 64 KiB.
	MaxBytes int
}

// Tables selects which tables are streamed. Patterns are "db.table" with
// path.Match globs ('*', '?', '[...]') on each side of the dot, e.g.
// "shop.*" or "*.tmp_*"; a name in backquotes is literal, which is how a
// name holding a dot is written: "shop.`orders.2024`" (ParseTablePattern).
type Tables struct {
	// Include lists the tables to stream; empty means every table.
	Include []string
	// Exclude lists tables never streamed; it wins over Include.
	Exclude []string
	// OnUnpublishable is what happens to a change that cannot be
	// published: "stop" (default) or "skip", for every table or per table
	// pattern (TablePolicy).
	OnUnpublishable TablePolicy
	// DeadLetterSubject receives a marker for each skipped change; empty
	// means ProName + "_dbsync.deadletter" (Config.DeadLetter).
	DeadLetterSubject string
}

// Log configures the producer's logging.
type Log struct {
	// Level is trace, debug, info (default), warn or error.
	Level string
	// Format is "text" (default) or "json".
	Format string
}

// Default values, exported so documentation and callers can refer to them.
// Those of a component (a broker, a store) are the component's own.
const (
	DefaultServerID        = 1001
	DefaultStartAt         = "current"
	DefaultCharset         = "utf8mb4"
	DefaultHeartbeatPeriod = 10 * time.Second
	DefaultReadTimeout     = 30 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
	DefaultDaoName         = "bolt"
	DefaultPosKey          = storage.DefaultBoltKey
	DefaultBoltFile        = "pos.db"
	DefaultBoltBucket      = storage.DefaultBoltBucket
	DefaultBoltTimeout     = storage.DefaultBoltTimeout
	DefaultMQName          = "stan"
	DefaultMaxInflight     = mq.DefaultJetStreamMaxInflight
	DefaultAckTimeout      = mq.DefaultJetStreamAckTimeout
	DefaultJetStreamListen = "127.0.0.1:4222"
	DefaultJetStreamStream = mq.DefaultJetStreamStream
	DefaultHTTPListen      = ":8080"
	DefaultStallTimeout    = 60 * time.Second
	// KafkaKeyTable and KafkaKeyPrimaryKey are Kafka.Key's values.
	KafkaKeyTable      = "table"
	KafkaKeyPrimaryKey = "primary_key"
	// DefaultKafkaClientID is Kafka.ClientID's default.
	DefaultKafkaClientID = "dbsync"
	// DefaultJetStreamProName is ProName's default with MQName "jetstream".
	DefaultJetStreamProName  = mq.DefaultJetStreamSubjectPrefix
	DefaultJetStreamStore    = mq.DefaultJetStreamStorage
	DefaultDuplicateWindow   = mq.DefaultJetStreamDuplicateWindow
	DefaultStreamMaxAge      = mq.DefaultJetStreamMaxAge
	DefaultMysqlTLSMode      = TLSPreferred
	DefaultBatchMaxRows      = 1024
	DefaultBatchMaxWait      = 3 * time.Second
	DefaultBatchMaxBytes     = 16 << 20
	DefaultLogLevel          = "info"
	DefaultLogFormat         = "text"
	DefaultMemoryBudget      = 64 << 20
	DefaultSnapshotChunkRows = 4096
	DefaultCheckpointBucket  = "DBSYNC_CHECKPOINT"
	DefaultLeaseTTL          = 15 * time.Second
	DefaultNATSMaxPayload    = 1 << 20
	// DefaultDeadLetterSubject follows ProName in Tables.DeadLetterSubject's
	// default.
	DefaultDeadLetterSubject = "_dbsync.deadletter"
)

// Defaults returns a Config holding every default and nothing else (no
// addresses, so it does not validate on its own).
func Defaults() *Config {
	c := &Config{}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills every zero-valued setting that has a default (numbers,
// durations, enumerations, names, FlushWhenIdle). It is meant for configs
// built in code; Parse instead starts from Defaults so that an explicit 0 in
// a file stays 0 and is reported by Validate.
func (c *Config) ApplyDefaults() {
	c.applyStringDefaults()
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *Duration, v time.Duration) {
		if *p == 0 {
			*p = Duration(v)
		}
	}
	if c.Mysql.ServerID == 0 {
		c.Mysql.ServerID = DefaultServerID
	}
	setDur(&c.Mysql.HeartbeatPeriod, DefaultHeartbeatPeriod)
	setDur(&c.Mysql.ReadTimeout, DefaultReadTimeout)
	setDur(&c.Mysql.ConnectTimeout, DefaultConnectTimeout)
	setDur(&c.Bolt.Timeout, DefaultBoltTimeout)
	setInt(&c.Stan.MaxInflight, DefaultMaxInflight)
	setDur(&c.Stan.AckTimeout, DefaultAckTimeout)
	setInt(&c.JetStream.Replicas, 1)
	setInt(&c.JetStream.MaxInflight, DefaultMaxInflight)
	setDur(&c.JetStream.AckTimeout, DefaultAckTimeout)
	setDur(&c.JetStream.DuplicateWindow, DefaultDuplicateWindow)
	setDur(&c.JetStream.MaxAge, DefaultStreamMaxAge)
	setDur(&c.HTTP.StallTimeout, DefaultStallTimeout)
	setInt(&c.Batch.MaxRows, DefaultBatchMaxRows)
	setDur(&c.Batch.MaxWait, DefaultBatchMaxWait)
	setInt(&c.Batch.MaxBytes, DefaultBatchMaxBytes)
	setInt(&c.Memory.Budget, DefaultMemoryBudget)
	setInt(&c.Snapshot.ChunkRows, DefaultSnapshotChunkRows)
	setDur(&c.HA.LeaseTTL, DefaultLeaseTTL)
	setInt(&c.JetStream.MaxPayload, DefaultNATSMaxPayload)
	setInt(&c.Kafka.Partitions, 1)
	if c.Kafka.ReplicationFactor == 0 {
		c.Kafka.ReplicationFactor = -1
	}
	setDur(&c.Kafka.AckTimeout, DefaultAckTimeout)
}

// applyStringDefaults replaces empty strings that have a default, and a nil
// FlushWhenIdle, with their defaults. An empty string in the file therefore
// means "the default".
func (c *Config) applyStringDefaults() {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&c.Mysql.StartAt, DefaultStartAt)
	set(&c.Mysql.Charset, DefaultCharset)
	c.Mysql.TLS.Mode = c.Mysql.TLS.EffectiveMysql()
	set(&c.Storage.DaoName, DefaultDaoName)
	set(&c.Storage.PosKey, DefaultPosKey)
	set(&c.Bolt.File, DefaultBoltFile)
	set(&c.Bolt.Bucket, DefaultBoltBucket)
	set(&c.MQName, DefaultMQName)
	set(&c.JetStream.Listen, DefaultJetStreamListen)
	set(&c.JetStream.Stream, DefaultJetStreamStream)
	set(&c.JetStream.CheckpointBucket, DefaultCheckpointBucket)
	set(&c.JetStream.Storage, DefaultJetStreamStore)
	set(&c.HTTP.Listen, DefaultHTTPListen)
	set(&c.Log.Level, DefaultLogLevel)
	set(&c.Snapshot.Mode, SnapshotNever)
	set(&c.Snapshot.Keyless, KeylessRead)
	set(&c.Log.Format, DefaultLogFormat)
	if c.MQName == "jetstream" {
		// A JetStream stream cannot capture "*.*" (it overlaps the server's
		// API subjects), so JetStream subjects always carry a prefix.
		set(&c.ProName, DefaultJetStreamProName)
	}
	if c.MQName == "kafka" {
		// Topics named like JetStream's subjects, "dbsync.<db>.<table>".
		set(&c.ProName, DefaultJetStreamProName)
		set(&c.Kafka.ClientID, DefaultKafkaClientID)
		set(&c.Kafka.Key, KafkaKeyTable)
	}
	if c.Batch.FlushWhenIdle == nil {
		t := true
		c.Batch.FlushWhenIdle = &t
	}
	if c.Tables.OnUnpublishable.All == "" && c.Tables.OnUnpublishable.ByTable == nil {
		c.Tables.OnUnpublishable.All = PolicyStop
	}
}

// FlushIdle reports whether a batch is flushed when the stream goes idle
// (FlushWhenIdle, true when unset).
func (b Batch) FlushIdle() bool { return b.FlushWhenIdle == nil || *b.FlushWhenIdle }

// Load reads, defaults, overrides from the process environment and
// validates the config file at path. It is LoadWithEnv(path, os.LookupEnv).
func Load(path string) (*Config, error) {
	return LoadWithEnv(path, os.LookupEnv)
}

// LoadWithEnv reads the config file at path and returns Parse's result, with
// lookup supplying the environment overrides (nil means none). A missing
// file is an error naming the path and suggesting -config PATH.
func LoadWithEnv(path string, lookup func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config file %q does not exist; pass -config PATH with the path of dbsync's JSON config (see config.json in the repository): %w", path, err)
		}
		return nil, fmt.Errorf("read config file %q: %w", path, err)
	}
	return Parse(data, path, lookup)
}

// Parse decodes data (a JSON object; source names it in messages), starting
// from Defaults, then applies the environment overrides found through lookup
// (nil means none), fills empty strings with their defaults and validates.
//
// On failure it returns a nil Config and one error listing every problem:
// the syntax error with line:column, or all unknown keys, type errors and
// validation problems, each naming its key path.
func Parse(data []byte, source string, lookup func(string) (string, bool)) (*Config, error) {
	if source == "" {
		source = "config"
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: the file is empty; it must hold a JSON object such as {\"Mysql\": {\"Host\": \"127.0.0.1\", ...}}", source)
	}
	var root json.RawMessage
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(source, data, err)
	}
	c := Defaults()
	// Explicit zero numbers in the file must stay visible to Validate, so
	// start from full defaults and decode over them.
	d := decoder{}
	d.decodeStruct(root, reflect.ValueOf(c).Elem(), "")
	problems := d.problems

	applied := c.applyEnv(lookup)
	c.applyStringDefaults()
	problems = append(problems, c.readSecretFiles()...)

	if err := c.Validate(); err != nil {
		for _, e := range unwrapJoined(err) {
			var fe *FieldError
			if errors.As(e, &fe) {
				if d.bad[fe.Key] {
					continue // already reported as a type error
				}
				if name, ok := applied[fe.Key]; ok {
					fe.Env = name
				}
			}
			problems = append(problems, e)
		}
	}
	if len(problems) > 0 {
		return nil, &problemList{source: source, errs: problems}
	}
	return c, nil
}

// problemList is Parse's error: every problem found in one source. It
// unwraps to the individual *FieldError and *UnknownKeyError values.
type problemList struct {
	source string
	errs   []error
}

// maxListedProblems bounds how many problems an error lists: a file of
// garbage must not make a message larger than the file.
const maxListedProblems = 50

func (p *problemList) Error() string {
	var b strings.Builder
	noun := "problems"
	if len(p.errs) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, "%s: %d configuration %s:", p.source, len(p.errs), noun)
	for i, e := range p.errs {
		if i == maxListedProblems {
			fmt.Fprintf(&b, "\n  ... and %d more (fix these first)", len(p.errs)-i)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

func (p *problemList) Unwrap() []error { return p.errs }

// unwrapJoined returns the errors joined in err, or err alone.
func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
