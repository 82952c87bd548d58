package client

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// Change types, as in the envelope's "type".
const (
	Insert = envelope.TypeInsert
	Update = envelope.TypeUpdate
	Delete = envelope.TypeDelete
	// Read is a row a snapshot read (the table's existing rows, published
	// in order with the live changes): apply it like an insert that may
	// find the row present (an upsert). Its Source.Snapshot says which
	// snapshot and chunk it belongs to.
	Read = envelope.TypeRead
)

// Change is one row change decoded into T.
type Change[T any] struct {
	// Type is Insert, Update, Delete or Read.
	Type string
	// DB and Table name the changed table.
	DB, Table string
	// Before is the row before the change (nil for an insert); After the
	// row after it (nil for a delete).
	Before, After *T
	// ID is the change's stable id ("file:pos:row").
	ID string
	// Source is the binlog coordinate (file, position, row, GTID).
	Source envelope.Source
	// CommitTime is the binlog timestamp of the change (one-second
	// resolution).
	CommitTime time.Time
}

// Subscribe consumes the changes of db.table as Change[T]. An empty db or
// table is taken from T: its TableName() method (which may return
// "db.table") or the snake_case of its name, with Config.Database as the
// database. The handler's ctx is cancelled when the subscription or the
// client closes. A handler error or panic, or a row that does not fit T, is
// reported (Config.OnError and the log) and the change is handed over again
// after a backoff; later changes of the table wait for it.
func Subscribe[T any](c *Client, db, table string, handler func(ctx context.Context, ch Change[T]) error) (*Subscription, error) {
	t := reflect.TypeFor[T]()
	dec, err := c.decoder(t)
	if err != nil {
		return nil, err
	}
	db, table, err = c.resolveTable(t, db, table)
	if err != nil {
		return nil, err
	}
	return c.subscribe(db, table, func(ctx context.Context, env *envelope.Envelope, _ []byte) error {
		ch, err := decodeChange[T](dec, env)
		if err != nil {
			return err
		}
		return handler(ctx, ch)
	}, nil)
}

// resolveTable completes db and table from the model type t.
func (c *Client) resolveTable(t reflect.Type, db, table string) (string, string, error) {
	if table == "" {
		name := TableName(t)
		if d, tb, ok := strings.Cut(name, "."); ok {
			if db == "" {
				db = d
			}
			name = tb
		}
		table = name
	}
	if db == "" {
		db = c.cfg.Database
	}
	if db == "" {
		return "", "", fmt.Errorf("no database for %s (table %q): pass one, set client.Config.Database, or return \"db.table\" from %s.TableName()", t, table, t.Name())
	}
	return db, table, nil
}

// Decode turns one message into a Change[T] without a broker, with the same
// rules as Subscribe. When T names its table (a TableName() method, or
// DecodeOptions.Database with the snake_case of T's name), an envelope of
// another table is a *TableMismatchError.
func Decode[T any](msg []byte, opts DecodeOptions) (Change[T], error) {
	t := reflect.TypeFor[T]()
	dec, err := NewDecoder(t, opts)
	if err != nil {
		return Change[T]{}, err
	}
	env, err := envelope.Decode(msg)
	if err != nil {
		return Change[T]{}, err
	}
	if err := checkTable(t, opts.Database, env); err != nil {
		return Change[T]{}, err
	}
	return decodeChange[T](dec, env)
}

// checkTable fails when the struct type t names a table (TableName(), or
// db with the snake_case of its name) and env is a change of another one.
func checkTable(t reflect.Type, db string, env *envelope.Envelope) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var want string
	if _, ok := reflect.New(t).Interface().(interface{ TableName() string }); ok {
		want = TableName(t)
		if d, table, ok := strings.Cut(want, "."); ok {
			db, want = d, table
		}
	} else if db != "" {
		want = SnakeCase(t.Name())
	}
	if want == "" {
		return nil
	}
	if env.Table != want || db != "" && env.DB != db {
		w := want
		if db != "" {
			w = db + "." + want
		}
		return &TableMismatchError{Want: w, Got: env.DB + "." + env.Table, Type: t.Name()}
	}
	return nil
}

func decodeChange[T any](dec *Decoder, env *envelope.Envelope) (Change[T], error) {
	ch := Change[T]{Type: env.Type, DB: env.DB, Table: env.Table, ID: env.ID, Source: env.Source, CommitTime: env.Source.TS}
	table := env.DB + "." + env.Table
	binary := binaryColumns(env)
	if env.Before != nil {
		ch.Before = new(T)
		if err := dec.Decode(ch.Before, table, env.Before, binary); err != nil {
			return Change[T]{}, err
		}
	}
	if env.After != nil {
		ch.After = new(T)
		if err := dec.Decode(ch.After, table, env.After, binary); err != nil {
			return Change[T]{}, err
		}
	}
	return ch, nil
}

// binaryColumns returns the envelope's base64 columns; a v1 envelope leaves
// "binary" out when the table has none, so nil means none (not unknown).
func binaryColumns(env *envelope.Envelope) []string {
	if env.Binary == nil {
		return []string{}
	}
	return env.Binary
}

// Register consumes the table model maps to (see Subscribe) and hands each
// message, as received, to handler, which typically calls Build: the
// callback API of dbsync 1's client. It returns an error instead of exiting.
func (c *Client) Register(model any, handler func(msg []byte) error) error {
	t := reflect.TypeOf(model)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return fmt.Errorf("Register: model must be a struct, got %T", model)
	}
	db, table, err := c.resolveTable(t, "", "")
	if err != nil {
		return fmt.Errorf("Register: %w", err)
	}
	_, err = c.subscribe(db, table, func(_ context.Context, _ *envelope.Envelope, raw []byte) error {
		return handler(raw)
	}, nil)
	return err
}

// Build fills before and after (pointers to structs of one type) from a
// message: for an insert before stays zero, for a delete after stays zero,
// for an update both are filled. DATETIME values are read as UTC. It fails
// on a message that is not a complete envelope, on an envelope of another
// table than the struct's TableName() names (*TableMismatchError), and
// with an error naming table, column and field when a value does not fit.
func Build(before, after any, msg []byte) error {
	env, err := envelope.Decode(msg)
	if err != nil {
		return err
	}
	for _, dst := range []any{before, after} {
		if t := reflect.TypeOf(dst); t != nil {
			if err := checkTable(t, "", env); err != nil {
				return fmt.Errorf("Build: %w", err)
			}
			break
		}
	}
	table := env.DB + "." + env.Table
	for _, x := range []struct {
		dst  any
		img  map[string]json.RawMessage
		name string
	}{{before, env.Before, "before"}, {after, env.After, "after"}} {
		if x.img == nil {
			continue
		}
		v := reflect.ValueOf(x.dst)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			return fmt.Errorf("Build: %s must be a non-nil pointer to a struct, got %T", x.name, x.dst)
		}
		dec, err := NewDecoder(v.Elem().Type(), DecodeOptions{})
		if err != nil {
			return fmt.Errorf("Build: %w", err)
		}
		if err := dec.Decode(x.dst, table, x.img, binaryColumns(env)); err != nil {
			return err
		}
	}
	return nil
}

// SubscribeEnvelope consumes db.table as raw envelopes, with the same
// delivery rules as Subscribe (ordered, acknowledged after the handler,
// deduplicated).
func (c *Client) SubscribeEnvelope(db, table string, handler func(ctx context.Context, env *envelope.Envelope, raw []byte) error) (*Subscription, error) {
	if db == "" || table == "" {
		return nil, fmt.Errorf("SubscribeEnvelope: database and table are required, got %q.%q", db, table)
	}
	return c.subscribe(db, table, handler, nil)
}
