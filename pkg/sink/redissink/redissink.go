// Package redissink keeps source tables in Redis: one hash per row.
//
// # Keys
//
// A row's key is Config.KeyPattern (default "{db}:{table}:{pk}") with {db}
// and {table} the source database and table and {pk} the row's primary
// key. A primary key of one column is that column's value in its typed form
// (below) as is, ":" included: "shop:orders:7",
// "shop:events:2026-11-21T12:34:56". The values of a composite key are
// joined by ":", each with "\" written as "\\" and ":" as "\:":
// ("a:b", 7) is "shop:pairs:a\:b:7". {db} and {table} are escaped the same
// way (a name holding ":" or "\" is rare), so a key of the default pattern
// splits back unambiguously: database, table, key.
//
// # Fields
//
// Each column of the row is a hash field named like the column. With
// Config.Fields "json" (the default) the field holds the column's value in
// the envelope's JSON form (docs/envelope.md), exactly the bytes of the
// change's value: a string is quoted ("\"abc\""), DECIMAL is a quoted
// string ("\"12.50\""), bytes are quoted base64, NULL is "null". With
// "typed" a JSON string is stored as its content unquoted (abc, 12.50, the
// base64 text of bytes, 2026-11-21T12:34:56), a number as its digits, a
// JSON column's object or array, a SET's array and true/false as their JSON
// text, and NULL as an absent field.
//
// Beside the columns the hash holds the version field (Config.VersionField,
// default "_dbsync"): the coordinate of the change that wrote the row,
// "<history>|<source name>|<binlog base name>|<file number, 20
// digits>:<pos, 10 digits>:<row, 10 digits>", e.g.
// "3f9a0c12b7d4|main|mysql-bin|00000000000000000002:0000004211:0000000000".
// A change is applied only when its coordinate is after the stored one,
// which makes a replayed change, or a snapshot row older than the row's
// last change, leave the row as it is. A change of another binlog history
// (another history, source name or binlog base name, which the SDK already
// judged) is applied.
//
// An insert, update or snapshot read replaces the row's hash with the
// change's row image, so a column dropped at the source disappears. A row
// image without some of the columns of the batch's sink.Table
// (binlog_row_image=MINIMAL or NOBLOB) is merged into the hash instead: the
// columns it carries are set (in "typed" form a null deletes the field),
// the others keep their value. An update that changes the primary key
// deletes the old key. A delete deletes the key and leaves a tombstone, a
// string key Config.TombstonePrefix + the row's key (default
// "dbsync:sync:deleted:shop:orders:7") holding the delete's version, for
// Config.TombstoneTTL (default 24h): an older change of the row replayed
// within that time does not bring it back (the SDK drops replays it knows
// of; the versions guard the crash between two calls below and snapshot
// rows). With Config.TTL a row's version expires with the row, so a change
// replayed after that writes the row again, to expire after TTL.
//
// # Atomicity
//
// Apply runs one Lua script (EVALSHA, EVAL when the server does not have
// it) per batch: it applies the changes in order and sets the progress key
// Config.ProgressPrefix + b.Key (default "dbsync:sync:progress:<key>") to
// the JSON of b.Progress, atomically. A batch over Config.MaxCallChanges
// changes or Config.MaxCallBytes bytes is split into several calls, the
// progress going with the last one; each call is atomic, and a crash
// between two leaves rows ahead of the progress, which the rows' versions
// make harmless (the SDK hands the batch over again and its applied part
// is skipped). The script reads every row's version before its first
// write, so a key of the pattern that another program holds as another
// type fails the call with nothing written; an error Redis raises later (a
// write refused by the ACL, out of memory) leaves the call's earlier
// writes, like a crash between calls. The sink needs one Redis server (not
// a cluster: a batch's keys are in many slots); durability is the server's
// persistence's (enable AOF).
package redissink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/redact"
	"github.com/dbsync/dbsync/pkg/sink"
)

// Defaults applied by New to empty Config fields.
const (
	DefaultKeyPattern      = "{db}:{table}:{pk}"
	DefaultProgressPrefix  = "dbsync:sync:progress:"
	DefaultTombstonePrefix = "dbsync:sync:deleted:"
	DefaultVersionField    = "_dbsync"
	DefaultTombstoneTTL    = 24 * time.Hour
	DefaultMaxCallChanges  = 1000
	DefaultMaxCallBytes    = 8 << 20
	DefaultTimeout         = 10 * time.Second
)

// ACLCommands are the commands a Redis ACL user of the sink needs (Apply's
// script runs HGET, GET, DEL, SET, HSET, HDEL and PEXPIRE; Dedup GET and
// SET; Rows SCAN and HGETALL), besides its keys.
const ACLCommands = "+ping +evalsha +eval +script|load +get +set +del +hget +hset +hdel +pexpire +scan +hgetall"

// Field formats (Config.Fields).
const (
	FieldsJSON  = "json"
	FieldsTyped = "typed"
)

// Config configures a Redis sink.
type Config struct {
	// Addr is host:port of the Redis server. Required.
	Addr string
	// Username is the ACL user ("" for default), Password its password
	// ("" for none; never logged).
	Username, Password string
	// DB is the database index (SELECT).
	DB int
	// TLS, when set, secures the connection.
	TLS *tls.Config
	// KeyPattern is a row's key, with placeholders {db}, {table} and {pk}
	// ({pk} exactly once); default DefaultKeyPattern. See the package
	// documentation for how {pk} is written.
	KeyPattern string
	// Fields is FieldsJSON (default) or FieldsTyped.
	Fields string
	// TTL, when positive, is set on a row's key at every write of it.
	TTL time.Duration
	// TombstoneTTL is how long a deleted row's tombstone is kept; default
	// 24h.
	TombstoneTTL time.Duration
	// ProgressPrefix, TombstonePrefix and VersionField name the progress
	// keys, the tombstone keys and the row version's hash field; defaults
	// DefaultProgressPrefix, DefaultTombstonePrefix, DefaultVersionField.
	ProgressPrefix, TombstonePrefix, VersionField string
	// MaxCallChanges and MaxCallBytes bound one script call; a larger
	// batch is split. Defaults 1000 changes and 8 MiB.
	MaxCallChanges, MaxCallBytes int
	// Timeout bounds connecting and each command's reply; default 10s.
	Timeout time.Duration
	// Log receives the sink's log lines (nil: none).
	Log logrus.FieldLogger
}

// String describes c without its password.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = " password=" + redact.Mask
	}
	return fmt.Sprintf("redis sink %s db %d user %q%s tls=%t keys %q fields %q", c.Addr, c.DB, c.Username, pw, c.TLS != nil, c.KeyPattern, c.Fields)
}

// Sink is a sink.Sink writing to Redis. Safe for concurrent use.
type Sink struct {
	cfg     Config
	keys    keyPattern
	typed   bool
	client  *redis.Client
	log     logrus.FieldLogger
	secrets *redact.Secrets
}

var _ sink.Sink = (*Sink)(nil)

// New checks cfg, connects and pings the server. It fails on an invalid
// setting, naming it; on a refused login naming the user (never the
// password); and when the server does not answer within cfg.Timeout.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if cfg.Addr == "" {
		return nil, errors.New("redis sink: no address configured; set the Redis host:port (Config.Addr)")
	}
	if cfg.KeyPattern == "" {
		cfg.KeyPattern = DefaultKeyPattern
	}
	kp, err := parseKeyPattern(cfg.KeyPattern)
	if err != nil {
		return nil, err
	}
	switch cfg.Fields {
	case "":
		cfg.Fields = FieldsJSON
	case FieldsJSON, FieldsTyped:
	default:
		return nil, fmt.Errorf("redis sink: fields %q is not %q or %q", cfg.Fields, FieldsJSON, FieldsTyped)
	}
	if cfg.TTL < 0 || cfg.TombstoneTTL < 0 {
		return nil, fmt.Errorf("redis sink: a negative TTL (row %s, tombstone %s); use 0 for none (rows) or the 24h default (tombstones)", cfg.TTL, cfg.TombstoneTTL)
	}
	if cfg.TTL > 0 && cfg.TTL < time.Millisecond {
		cfg.TTL = time.Millisecond
	}
	if cfg.TombstoneTTL == 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	if cfg.ProgressPrefix == "" {
		cfg.ProgressPrefix = DefaultProgressPrefix
	}
	if cfg.TombstonePrefix == "" {
		cfg.TombstonePrefix = DefaultTombstonePrefix
	}
	if cfg.VersionField == "" {
		cfg.VersionField = DefaultVersionField
	}
	if cfg.MaxCallChanges <= 0 {
		cfg.MaxCallChanges = DefaultMaxCallChanges
	}
	if cfg.MaxCallBytes <= 0 {
		cfg.MaxCallBytes = DefaultMaxCallBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	user := cfg.Username
	if user == "" {
		user = "default"
	}
	log = log.WithFields(logrus.Fields{"sink": "redis", "addr": cfg.Addr, "db": cfg.DB})
	s := &Sink{
		cfg:   cfg,
		keys:  kp,
		typed: cfg.Fields == FieldsTyped,
		client: redis.NewClient(&redis.Options{
			Addr:            cfg.Addr,
			Username:        cfg.Username,
			Password:        cfg.Password,
			TLSConfig:       cfg.TLS,
			DB:              cfg.DB,
			DialTimeout:     cfg.Timeout,
			ReadTimeout:     cfg.Timeout,
			WriteTimeout:    cfg.Timeout,
			DisableIdentity: true,
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		}),
		log:     log,
		secrets: redact.NewSecrets(cfg.Password),
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		_ = s.client.Close()
		return nil, s.connectError(user, err)
	}
	// Load the script now, so that the first Apply needs no EVAL and a
	// user without the permission to run scripts is told at once.
	if err := applyScript.Load(ctx, s.client).Err(); err != nil {
		_ = s.client.Close()
		return nil, s.connectError(user, err)
	}
	log.WithFields(logrus.Fields{"user": user, "tls": cfg.TLS != nil, "key_pattern": cfg.KeyPattern, "fields": cfg.Fields,
		"ttl": cfg.TTL, "tombstone_ttl": cfg.TombstoneTTL}).Info("redis sink connected")
	return s, nil
}

// connectError wraps a failed ping or script load: a refused login or a
// missing permission is permanent and names what to fix.
func (s *Sink) connectError(user string, err error) error {
	where := fmt.Sprintf("redis sink %s (db %d)", s.cfg.Addr, s.cfg.DB)
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"), strings.Contains(msg, "invalid password"):
		err = failure.Permanent(fmt.Errorf("%s: the server rejected the credentials of user %q; set the sink's Redis username and password to an enabled ACL user and its current password: %w", where, user, err))
	case strings.HasPrefix(msg, "NOPERM"):
		err = failure.Permanent(fmt.Errorf("%s: the server's ACL refuses user %q a command the sink needs; grant it: ACL SETUSER %s %s ~* (or ~ the key pattern's and the progress and tombstone prefixes' keys): %w", where, user, user, ACLCommands, err))
	case strings.Contains(msg, "DB index is out of range"):
		err = fmt.Errorf("%s: the server has no database %d; set the sink's Redis database index to one it has: %w", where, s.cfg.DB, err)
	default:
		err = fmt.Errorf("%s: cannot connect (server unreachable or not answering; over TLS when the server requires it?): %w", where, err)
	}
	return s.secrets.Error(err)
}

// Prepare refuses a table without a primary key and a table with a column
// named like the version field; Redis needs nothing created.
func (s *Sink) Prepare(_ context.Context, t *sink.Table) error {
	if err := s.check(t); err != nil {
		return err
	}
	s.log.WithFields(logrus.Fields{"table": t.String(), "pk": t.PK}).Debug("redis sink: table prepared")
	return nil
}

// check is Prepare's check of t.
func (s *Sink) check(t *sink.Table) error {
	if len(t.PK) == 0 {
		return failure.Permanent(fmt.Errorf("redis sink: table %s has no primary key: a row's key is made of it, so its changes cannot be written to Redis; add a primary key to the source table (ALTER TABLE %s ADD PRIMARY KEY (...)) or leave the table out of the sync", t, t))
	}
	if _, ok := t.Column(s.cfg.VersionField); ok {
		return failure.Permanent(fmt.Errorf("redis sink: table %s has a column named %q, the hash field that holds each row's version; set the sink's version field (Config.VersionField) to a name no synced table uses", t, s.cfg.VersionField))
	}
	return nil
}

// call is one script call's keys and arguments.
type call struct {
	keys    []string
	args    []any
	changes int
	bytes   int
}

// Apply writes b's changes and b.Progress in one script call (several for
// a batch over MaxCallChanges or MaxCallBytes, the progress with the
// last). It fails without writing anything when a change cannot be
// written (a *sink.SchemaChangeError when its primary key columns are
// missing or a column is named like the version field), and with a
// transient error naming the table and the server when Redis fails.
func (s *Sink) Apply(ctx context.Context, b sink.Batch) error {
	t := b.Table
	if t == nil {
		return errors.New("redis sink: a batch without its table")
	}
	if err := s.check(t); err != nil {
		return err
	}
	progress, err := json.Marshal(b.Progress)
	if err != nil {
		return fmt.Errorf("redis sink: table %s: encode the progress of %s: %w", t, b.Key, err)
	}
	calls, err := s.encode(b, progress)
	if err != nil {
		return err
	}
	began := time.Now()
	var applied, skipped int64
	for i, c := range calls {
		res, err := applyScript.Run(ctx, s.client, c.keys, c.args...).Int64Slice()
		if err != nil {
			return s.secrets.Error(fmt.Errorf("redis sink %s: table %s: apply %d changes (script call %d of %d) and the progress of %s%s: %w",
				s.cfg.Addr, t, c.changes, i+1, len(calls), b.Key, hint(err), err))
		}
		if len(res) == 2 {
			applied += res[0]
			skipped += res[1]
		}
	}
	s.log.WithFields(logrus.Fields{"table": t.String(), "key": b.Key, "changes": len(b.Changes), "applied": applied,
		"skipped": skipped, "calls": len(calls), "took": time.Since(began)}).Debug("redis sink: batch applied")
	return nil
}

// hint says what fixes a failed script call, when known.
func hint(err error) string {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "NOPERM"), strings.Contains(msg, "can't run this command"), strings.Contains(msg, "No permissions to access a key"):
		return " (the server's ACL refuses the sink's user a command or key: grant it " + ACLCommands + " and the keys of the key pattern and the progress and tombstone prefixes)"
	case strings.HasPrefix(msg, "OOM"):
		return " (the server is out of memory (maxmemory): raise maxmemory, or set a TTL on the rows)"
	}
	return ""
}

// encode turns b into script calls; progress goes with the last.
func (s *Sink) encode(b sink.Batch, progress []byte) ([]*call, error) {
	t := b.Table
	tk := s.keys.forTable(t)
	header := func() *call {
		c := &call{keys: []string{s.cfg.ProgressPrefix + b.Key}}
		c.args = append(c.args, s.cfg.VersionField, s.cfg.TTL.Milliseconds(), s.cfg.TombstoneTTL.Milliseconds(), "0", "")
		return c
	}
	cur := header()
	calls := []*call{cur}
	for _, e := range b.Changes {
		ops, err := s.ops(tk, e)
		if err != nil {
			return nil, err
		}
		size := 0
		for _, o := range ops {
			size += o.size()
		}
		if cur.changes > 0 && (cur.changes+1 > s.cfg.MaxCallChanges || cur.bytes+size > s.cfg.MaxCallBytes) {
			cur = header()
			calls = append(calls, cur)
		}
		for _, o := range ops {
			o.appendTo(cur)
		}
		cur.changes++
		cur.bytes += size
	}
	cur.args[3], cur.args[4] = "1", progress
	return calls, nil
}

// op is one operation of the script on one row key.
type op struct {
	kind, key, tomb, head, tail string
	set                         []any // field, value, field, value... (string or []byte)
	del                         []any // field names (opMerge)
}

func (o *op) size() int {
	n := len(o.key) + len(o.tomb) + len(o.head) + len(o.tail) + 16
	for _, a := range o.set {
		switch v := a.(type) {
		case string:
			n += len(v)
		case []byte:
			n += len(v)
		}
	}
	for _, a := range o.del {
		n += len(a.(string))
	}
	return n
}

func (o *op) appendTo(c *call) {
	c.keys = append(c.keys, o.key, o.tomb)
	c.args = append(c.args, o.kind, o.head, o.tail, strconv.Itoa(len(o.set)/2))
	c.args = append(c.args, o.set...)
	c.args = append(c.args, strconv.Itoa(len(o.del)))
	c.args = append(c.args, o.del...)
}

// ops returns the script operations of change e of tk's table.
func (s *Sink) ops(tk tableKeys, e *envelope.Envelope) ([]*op, error) {
	t := tk.table
	if e.DB != t.DB || e.Table != t.Name {
		return nil, fmt.Errorf("redis sink: change %s of %s.%s in a batch of table %s (a bug in the caller)", e.ID, e.DB, e.Table, t)
	}
	if len(e.PK) > 0 && !slices.Equal(e.PK, t.PK) {
		return nil, &sink.SchemaChangeError{
			Table: t.String(),
			What:  fmt.Sprintf("change %s has primary key %v, the table %v", e.ID, e.PK, t.PK),
			Fix:   "the source table's primary key changed: delete the table's keys from Redis and sync the table again from a snapshot",
		}
	}
	head, tail := sink.Version(e.Source)
	switch e.Type {
	case envelope.TypeInsert, envelope.TypeRead:
		key, err := tk.key(e.After, nil)
		if err != nil {
			return nil, err
		}
		o, err := s.upsert(t, key, head, tail, e.After)
		return []*op{o}, err
	case envelope.TypeUpdate:
		// A minimal after image holds only the changed columns: the key
		// columns it lacks did not change.
		key, err := tk.key(e.After, e.Before)
		if err != nil {
			return nil, err
		}
		old, err := tk.key(e.Before, e.After)
		if err != nil {
			return nil, err
		}
		after := e.After
		for _, c := range t.PK {
			if _, ok := after[c]; !ok {
				after = maps.Clone(after)
				for _, c := range t.PK {
					if _, ok := after[c]; !ok {
						after[c] = e.Before[c]
					}
				}
				break
			}
		}
		o, err := s.upsert(t, key, head, tail, after)
		if err != nil {
			return nil, err
		}
		if old == key {
			return []*op{o}, nil
		}
		return []*op{s.remove(old, head, tail), o}, nil
	case envelope.TypeDelete:
		key, err := tk.key(e.Before, nil)
		if err != nil {
			return nil, err
		}
		return []*op{s.remove(key, head, tail)}, nil
	}
	return nil, fmt.Errorf("redis sink: table %s: change %s has type %q (want insert, update, delete or read)", t, e.ID, e.Type)
}

// remove is the deletion of key at version head|tail.
func (s *Sink) remove(key, head, tail string) *op {
	return &op{kind: opDelete, key: key, tomb: s.cfg.TombstonePrefix + key, head: head, tail: tail}
}

// upsert writes image to key: a replace when image holds every column of
// t, else a merge.
func (s *Sink) upsert(t *sink.Table, key, head, tail string, image map[string]json.RawMessage) (*op, error) {
	if _, ok := image[s.cfg.VersionField]; ok {
		return nil, &sink.SchemaChangeError{
			Table: t.String(),
			What:  fmt.Sprintf("column %q is the hash field that holds each row's version", s.cfg.VersionField),
			Fix:   "set the Redis sink's version field (Config.VersionField) to a name no synced table uses",
		}
	}
	o := &op{kind: opReplace, key: key, tomb: s.cfg.TombstonePrefix + key, head: head, tail: tail}
	for _, c := range t.Columns {
		if _, ok := image[c.Name]; !ok {
			o.kind = opMerge
			break
		}
	}
	o.set = make([]any, 0, 2*len(image))
	for name, v := range image {
		if !s.typed {
			o.set = append(o.set, name, []byte(v))
			continue
		}
		text, null := typedValue(v)
		switch {
		case !null:
			o.set = append(o.set, name, text)
		case o.kind == opMerge:
			o.del = append(o.del, name)
		}
	}
	return o, nil
}

// Dedup returns the progress store Apply writes to: the string key
// Config.ProgressPrefix + subject holding the progress's JSON. Its Close
// does nothing (Close the Sink).
func (s *Sink) Dedup() client.DedupStore { return progressStore{s} }

type progressStore struct{ s *Sink }

// Load implements client.DedupStore; ok is false when the key is absent.
func (d progressStore) Load(ctx context.Context, subject string) (client.Progress, bool, error) {
	key := d.s.cfg.ProgressPrefix + subject
	v, err := d.s.client.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return client.Progress{}, false, nil
	}
	if err != nil {
		return client.Progress{}, false, d.s.secrets.Error(fmt.Errorf("redis sink %s: load progress key %q: %w", d.s.cfg.Addr, key, err))
	}
	var p client.Progress
	if err := json.Unmarshal(v, &p); err != nil {
		return client.Progress{}, false, fmt.Errorf("redis sink %s: progress key %q does not hold a progress (%w); delete it to sync the subject from the consumer's start position", d.s.cfg.Addr, key, err)
	}
	return p, true, nil
}

// Save implements client.DedupStore.
func (d progressStore) Save(ctx context.Context, subject string, p client.Progress) error {
	key := d.s.cfg.ProgressPrefix + subject
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("redis sink: encode the progress of %s: %w", subject, err)
	}
	if err := d.s.client.Set(ctx, key, v, 0).Err(); err != nil {
		return d.s.secrets.Error(fmt.Errorf("redis sink %s: save progress key %q: %w", d.s.cfg.Addr, key, err))
	}
	return nil
}

// Close implements client.DedupStore.
func (progressStore) Close() error { return nil }

// Ping checks that the server answers.
func (s *Sink) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.secrets.Error(fmt.Errorf("redis sink %s: ping: %w", s.cfg.Addr, err))
	}
	return nil
}

// Close closes the connections.
func (s *Sink) Close() error { return s.client.Close() }

// Rows returns the rows of t the server holds (a checking aid: it SCANs
// the key space): the primary key's JSON array ("[7]", "[\"a\",2]", the
// values as stored) → column → value in the contract's JSON form, without
// the version field. It supports Fields "json" only, and fails naming the
// server when Redis does.
func (s *Sink) Rows(ctx context.Context, t *sink.Table) (map[string]map[string]json.RawMessage, error) {
	if s.typed {
		return nil, fmt.Errorf("redis sink: Rows reads %q fields only, this sink writes %q", FieldsJSON, FieldsTyped)
	}
	if len(t.PK) == 0 {
		return nil, fmt.Errorf("redis sink: table %s has no primary key", t)
	}
	tk := s.keys.forTable(t)
	match := globEscape(tk.before) + "*" + globEscape(tk.after)
	out := map[string]map[string]json.RawMessage{}
	iter := s.client.Scan(ctx, 0, match, 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		h, err := s.client.HGetAll(ctx, key).Result()
		if err != nil {
			if strings.HasPrefix(err.Error(), "WRONGTYPE") {
				continue // not a row
			}
			return nil, s.secrets.Error(fmt.Errorf("redis sink %s: table %s: read %q: %w", s.cfg.Addr, t, key, err))
		}
		row := make(map[string]json.RawMessage, len(h))
		for f, v := range h {
			if f != s.cfg.VersionField {
				row[f] = json.RawMessage(v)
			}
		}
		if k, err := tk.key(row, nil); err != nil || k != key {
			continue // another table's key matching the pattern, or gone
		}
		pk := make([]string, len(t.PK))
		for i, c := range t.PK {
			pk[i] = string(row[c])
		}
		out["["+strings.Join(pk, ",")+"]"] = row
	}
	if err := iter.Err(); err != nil {
		return nil, s.secrets.Error(fmt.Errorf("redis sink %s: table %s: scan %q: %w", s.cfg.Addr, t, match, err))
	}
	return out, nil
}

// globEscape escapes the characters SCAN's MATCH pattern gives a meaning.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
