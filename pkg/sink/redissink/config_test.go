package redissink_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/sink/redissink"
	"github.com/dbsync/dbsync/test/testenv"
)

func TestNewRefusesBadSettings(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  redissink.Config
		want string
	}{
		{redissink.Config{}, "no address configured"},
		{redissink.Config{Addr: "127.0.0.1:1", KeyPattern: "{db}:{table}"}, "holds {pk} 0 times"},
		{redissink.Config{Addr: "127.0.0.1:1", KeyPattern: "{db}:{pk}:{pk}"}, "holds {pk} 2 times"},
		{redissink.Config{Addr: "127.0.0.1:1", KeyPattern: "{schema}:{pk}"}, "unknown placeholder"},
		{redissink.Config{Addr: "127.0.0.1:1", Fields: "xml"}, `fields "xml" is not "json" or "typed"`},
		{redissink.Config{Addr: "127.0.0.1:1", TTL: -time.Second}, "negative TTL"},
	} {
		if _, err := redissink.New(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v): %v; want an error saying %q", tc.cfg, err, tc.want)
		}
	}
	// Nothing listens on port 1.
	if _, err := redissink.New(ctx, redissink.Config{Addr: "127.0.0.1:1", Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("New without a server: %v; want an error naming the address", err)
	}
}

func TestCredentialsAreNeverShown(t *testing.T) {
	const password, wrong = "s3cret-sink-pw", "wr0ng-sink-pw"
	ctx := context.Background()
	pki := testenv.NewPKI(t)
	r := testenv.StartRedisWith(t, testenv.RedisOptions{PKI: pki, Password: password,
		Users: []string{"syncer on >" + password + " ~* +@all"}})
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.DebugLevel)

	cfg := redissink.Config{Addr: r.Addr(), Username: "syncer", Password: wrong, TLS: r.TLS.Clone(), Log: log}
	if s := fmt.Sprintf("%v %s %+v", cfg, cfg, cfg); strings.Contains(s, wrong) {
		t.Errorf("the config prints its password: %s", s)
	}
	_, err := redissink.New(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), `user "syncer"`) || !failure.IsPermanent(err) {
		t.Errorf("New with a wrong password: %v; want a permanent error naming the user", err)
	} else if strings.Contains(err.Error(), wrong) {
		t.Errorf("the error shows the password: %v", err)
	}

	// The right one, over TLS, as an ACL user: a batch goes through.
	cfg.Password = password
	s, err := redissink.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tab := ordersTable()
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, batch(tab, change(tab, envelope.TypeInsert, pos(1, 0), nil, row("id", "1")))); err != nil {
		t.Fatal(err)
	}
	if got := r.Client(t).HGet(ctx, "shop:orders:1", "id").Val(); got != "1" {
		t.Errorf("row over TLS: id %q", got)
	}
	if !strings.Contains(logs.String(), "redis sink connected") || !strings.Contains(logs.String(), "batch applied") {
		t.Errorf("the sink logged nothing of its connection and batch:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), password) || strings.Contains(logs.String(), wrong) {
		t.Errorf("the log shows a password:\n%s", logs.String())
	}
}

func TestUserWithoutScriptsIsTold(t *testing.T) {
	r := testenv.StartRedisWith(t, testenv.RedisOptions{Users: []string{"reader on >readerpw ~* +@read +ping"}})
	_, err := redissink.New(context.Background(), redissink.Config{Addr: r.Addr(), Username: "reader", Password: "readerpw"})
	if err == nil || !strings.Contains(err.Error(), "ACL SETUSER reader") || !failure.IsPermanent(err) {
		t.Errorf("New as a user that may not run scripts: %v; want a permanent error with the ACL to grant", err)
	}
}

func TestACLCommandsAreEnough(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedisWith(t, testenv.RedisOptions{Users: []string{"syncer on >syncerpw ~* -@all " + redissink.ACLCommands}})
	s, err := redissink.New(ctx, redissink.Config{Addr: r.Addr(), Username: "syncer", Password: "syncerpw", TTL: time.Hour, Fields: redissink.FieldsJSON})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tab := ordersTable()
	one := row("id", "1", "status", `"new"`, "total", `"1.00"`)
	b := batch(tab,
		change(tab, envelope.TypeInsert, pos(1, 0), nil, one),
		change(tab, envelope.TypeUpdate, pos(1, 1), one, row("id", "1", "status", `"paid"`)),
		change(tab, envelope.TypeDelete, pos(1, 2), one, nil),
		change(tab, envelope.TypeInsert, pos(1, 3), nil, one),
		change(tab, envelope.TypeUpdate, pos(1, 4), one, row("id", "2", "status", `"moved"`, "total", `"1.00"`)))
	if err := s.Apply(ctx, b); err != nil {
		t.Fatalf("Apply as a user with ACLCommands: %v", err)
	}
	if _, _, err := s.Dedup().Load(ctx, b.Key); err != nil {
		t.Errorf("Dedup().Load: %v", err)
	}
	if err := s.Dedup().Save(ctx, b.Key, b.Progress); err != nil {
		t.Errorf("Dedup().Save: %v", err)
	}
	if rows, err := s.Rows(ctx, tab); err != nil || len(rows) != 1 {
		t.Errorf("Rows: %v, %v", rows, err)
	}
	if err := r.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, b); err != nil {
		t.Errorf("Apply (EVAL) as a user with ACLCommands: %v", err)
	}
}
