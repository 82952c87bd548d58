// Package syncer runs dbsync's sync command: it keeps a target (Redis or
// PostgreSQL, pkg/sink) equal to a set of source tables by consuming their
// changes through the SDK's batch API, with the target's own progress
// store as the SDK's dedup store (exactly once into the target), and
// serves metrics and health over HTTP.
package syncer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/redact"
)

// Targets the sync command writes to (Config.Target).
const (
	TargetRedis    = "redis"
	TargetPostgres = "postgres"
)

// Config is the sync command's JSON configuration (sync.json).
type Config struct {
	// Tables are the source tables kept in sync, "db.table".
	Tables []string
	// Target is "redis" or "postgres".
	Target string
	// Source is the MySQL/MariaDB server the tables live on: the sync
	// reads their columns and keys from information_schema (SELECT on
	// them is enough); the rows themselves come from the broker.
	Source Source
	// Broker is where the producer publishes.
	Broker Broker
	// Redis and Postgres describe the target.
	Redis    Redis
	Postgres Postgres
	// Batch bounds how many changes of a table are written in one step.
	Batch struct {
		MaxChanges int
	}
	HTTP struct {
		// Listen is the metrics and health listener ("" for none);
		// default 127.0.0.1:9102.
		Listen string
	}
	Log struct {
		Level  string // info (default), debug, warn, error
		Format string // text (default) or json
	}

	// secrets hides the configuration's secrets (read from their files).
	secrets *redact.Secrets
}

// Secrets hides the configuration's passwords, tokens and DSN in text
// (install its Hook on the logger).
func (c *Config) Secrets() *redact.Secrets { return c.secrets }

// Source is the MySQL/MariaDB server whose schema the sync reads.
type Source struct {
	Host         string
	Port         int
	User         string
	Password     string
	PasswordFile string
}

// Broker says how the SDK reaches the producer's broker.
type Broker struct {
	// Broker is "jetstream" (default), "stan" or "kafka".
	Broker string
	// URL is the NATS server ("nats://host:4222"); Brokers the Kafka
	// seed brokers.
	URL     string
	Brokers []string
	// ClusterID is NATS Streaming's cluster id.
	ClusterID string
	// ClientID names the sync's durable subscriptions; default
	// "dbsync-sync-<target>". Two sync processes of one target must not
	// share it unless they are meant to share the work (they would not).
	ClientID string
	// Stream and Prefix are the producer's JetStream.Stream and ProName.
	Stream, Prefix string
	// User and Password (or PasswordFile), or Token (TokenFile),
	// NKeySeedFile, CredsFile: NATS credentials; with Kafka User and
	// Password with SASLMechanism.
	User, Password, PasswordFile string
	Token, TokenFile             string
	NKeySeedFile, CredsFile      string
	SASLMechanism                string
	TLS                          client.TLS
	// OnPoison is the SDK's policy for an undecodable message: "block"
	// (default) stops the table's sync at it, "deadletter" copies it to
	// DeadLetterSubject and goes on.
	OnPoison          string
	DeadLetterSubject string
	// AckWait is the SDK's (its default when 0).
	AckWait config.Duration
}

// Redis is the Redis target (see pkg/sink/redissink for the key and field
// formats).
type Redis struct {
	Addr                   string
	Username               string
	Password, PasswordFile string
	DB                     int
	// KeyPattern defaults to "{db}:{table}:{pk}".
	KeyPattern string
	// Fields is "json" (default) or "typed".
	Fields string
	// TTL expires each row this long after its last write (0: never).
	TTL config.Duration
	// TombstoneTTL is how long a deleted row's version is kept (default
	// 24h).
	TombstoneTTL config.Duration
}

// Postgres is the PostgreSQL target.
type Postgres struct {
	// DSN is a libpq connection string or URL; DSNFile reads it from a
	// file (it holds the password).
	DSN, DSNFile string
	// Schema, when set, holds every table (default: a schema per source
	// database, named like it).
	Schema string
}

// Load reads and checks the configuration file at path. Every problem is
// reported at once, each naming its key; an unknown key is one.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the sync configuration: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and checks a configuration; source names it in errors.
func Parse(data []byte, source string) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w (see docs/sync.md for the keys)", source, err)
	}
	c.defaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	secrets, err := c.resolveSecrets()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	c.secrets = redact.NewSecrets(secrets...)
	return &c, nil
}

func (c *Config) defaults() {
	if c.Broker.Broker == "" {
		c.Broker.Broker = client.BrokerJetStream
	}
	if c.Broker.ClientID == "" {
		c.Broker.ClientID = "dbsync-sync-" + c.Target
	}
	if c.Source.Port == 0 {
		c.Source.Port = 3306
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:9102"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

// validate lists every problem, each naming its key.
func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Tables) == 0 {
		bad("Tables", `no table to sync: list them as ["shop.orders", ...]`)
	}
	for i, t := range c.Tables {
		if db, name, ok := strings.Cut(t, "."); !ok || db == "" || name == "" || strings.ContainsAny(t, "*?") {
			bad(fmt.Sprintf("Tables[%d]", i), "%q is not db.table (one table, no pattern)", t)
		}
	}
	switch c.Target {
	case TargetRedis:
		if c.Redis.Addr == "" {
			bad("Redis.Addr", `missing: the Redis server, "host:6379"`)
		}
		if c.Redis.Fields != "" && c.Redis.Fields != "json" && c.Redis.Fields != "typed" {
			bad("Redis.Fields", `%q: want "json" or "typed"`, c.Redis.Fields)
		}
		if c.Redis.Password != "" && c.Redis.PasswordFile != "" {
			bad("Redis.PasswordFile", "Redis.Password is set too; keep one")
		}
	case TargetPostgres:
		if (c.Postgres.DSN == "") == (c.Postgres.DSNFile == "") {
			bad("Postgres.DSN", `set exactly one of Postgres.DSN ("postgres://user@host:5432/db") and Postgres.DSNFile`)
		}
	default:
		bad("Target", `%q: want "redis" or "postgres"`, c.Target)
	}
	if c.Source.Host == "" {
		bad("Source.Host", "missing: the MySQL/MariaDB server whose tables are synced (their columns are read from information_schema)")
	}
	if c.Source.User == "" {
		bad("Source.User", "missing: a user with SELECT on the synced tables")
	}
	if c.Source.Password != "" && c.Source.PasswordFile != "" {
		bad("Source.PasswordFile", "Source.Password is set too; keep one")
	}
	if c.Broker.Password != "" && c.Broker.PasswordFile != "" {
		bad("Broker.PasswordFile", "Broker.Password is set too; keep one")
	}
	if c.Broker.Token != "" && c.Broker.TokenFile != "" {
		bad("Broker.TokenFile", "Broker.Token is set too; keep one")
	}
	if c.Postgres.DSN != "" && c.Postgres.DSNFile != "" && c.Target != TargetPostgres {
		bad("Postgres.DSNFile", "Postgres.DSN is set too; keep one")
	}
	switch c.Broker.Broker {
	case client.BrokerJetStream, client.BrokerStan:
		if c.Broker.URL == "" {
			bad("Broker.URL", `missing: the NATS server, "nats://host:4222"`)
		}
		if c.Broker.Broker == client.BrokerStan && c.Broker.ClusterID == "" {
			bad("Broker.ClusterID", "missing: NATS Streaming's cluster id")
		}
	case client.BrokerKafka:
		if len(c.Broker.Brokers) == 0 {
			bad("Broker.Brokers", `missing: the Kafka seed brokers, ["kafka-0:9092"]`)
		}
	default:
		bad("Broker.Broker", `%q: want "jetstream", "stan" or "kafka"`, c.Broker.Broker)
	}
	if p := c.Broker.OnPoison; p != "" && p != client.PoisonBlock && p != client.PoisonDeadLetter {
		bad("Broker.OnPoison", `%q: want "block" or "deadletter"`, p)
	}
	if c.Batch.MaxChanges < 0 {
		bad("Batch.MaxChanges", "%d: want a positive number (0 for the default %d)", c.Batch.MaxChanges, client.DefaultBatchMaxChanges)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("Log.Format", `%q: want "text" or "json"`, c.Log.Format)
	}
	if time.Duration(c.Redis.TTL) < 0 || time.Duration(c.Redis.TombstoneTTL) < 0 {
		bad("Redis.TTL", "negative durations are not allowed")
	}
	return errors.Join(errs...)
}

// resolveSecrets reads the secret files into their values (Source.Password,
// Broker.Password and Token, Redis.Password, Postgres.DSN) and returns every
// secret, for redaction. Errors name the key, never the secret.
func (c *Config) resolveSecrets() ([]string, error) {
	var err error
	read := func(key string, value *string, file string) {
		if err == nil {
			*value, err = readSecret(key, *value, file)
		}
	}
	read("Source.PasswordFile", &c.Source.Password, c.Source.PasswordFile)
	read("Broker.PasswordFile", &c.Broker.Password, c.Broker.PasswordFile)
	read("Broker.TokenFile", &c.Broker.Token, c.Broker.TokenFile)
	read("Redis.PasswordFile", &c.Redis.Password, c.Redis.PasswordFile)
	read("Postgres.DSNFile", &c.Postgres.DSN, c.Postgres.DSNFile)
	if err != nil {
		return nil, err
	}
	secrets := []string{c.Source.Password, c.Broker.Password, c.Broker.Token, c.Redis.Password}
	if c.Postgres.DSN != "" {
		secrets = append(secrets, c.Postgres.DSN, dsnPassword(c.Postgres.DSN))
	}
	return secrets, nil
}

// dsnPassword is the password of a PostgreSQL DSN, a URL's or a
// key/value string's password= (quoted or not; "" when none).
func dsnPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if u.User == nil {
			return ""
		}
		p, _ := u.User.Password()
		return p
	}
	i := strings.Index(dsn, "password")
	for i >= 0 {
		rest := strings.TrimLeft(dsn[i+len("password"):], " ")
		if v, ok := strings.CutPrefix(rest, "="); ok {
			v = strings.TrimLeft(v, " ")
			if strings.HasPrefix(v, "'") {
				var b strings.Builder
				for j := 1; j < len(v); j++ {
					switch {
					case v[j] == '\\' && j+1 < len(v):
						j++
						b.WriteByte(v[j])
					case v[j] == '\'':
						return b.String()
					default:
						b.WriteByte(v[j])
					}
				}
				return b.String()
			}
			if end := strings.IndexAny(v, " \t"); end >= 0 {
				v = v[:end]
			}
			return v
		}
		next := strings.Index(dsn[i+1:], "password")
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return ""
}

// readSecret returns value, or the content of file (its trailing newline
// dropped) when file is set. Errors name the key, never the secret.
func readSecret(key, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %q is empty", key, file)
	}
	return s, nil
}
