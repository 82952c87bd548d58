package syncer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseReportsEveryProblem: a configuration with several mistakes is
// refused with each one named by its key, an unknown key included.
func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`{"Tables": ["shop", "shop.*"], "Target": "mongo", "Source": {}, "Broker": {"Broker": "jetstream"},
		"Batch": {"MaxChanges": -1}, "Log": {"Format": "xml"}}`), "sync.json")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"sync.json", `Tables[0]: "shop" is not db.table`, `Tables[1]: "shop.*"`, `Target: "mongo"`, "Source.Host: missing",
		"Source.User: missing", "Broker.URL: missing", "Batch.MaxChanges: -1", `Log.Format: "xml"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Parse([]byte(`{"Tables": ["a.b"], "Targte": "redis"}`), "sync.json"); err == nil || !strings.Contains(err.Error(), `unknown field "Targte"`) {
		t.Fatalf("a misspelt key: %v", err)
	}
	_, err = Parse([]byte(`{"Tables": ["a.b"], "Target": "postgres", "Source": {"Host": "h", "User": "u"}, "Broker": {"Broker": "kafka"}}`), "sync.json")
	if err == nil || !strings.Contains(err.Error(), "Postgres.DSN: set exactly one") || !strings.Contains(err.Error(), "Broker.Brokers: missing") {
		t.Fatalf("postgres and kafka keys: %v", err)
	}
}

// TestSecretsFromFilesAreHidden: the secrets read from files (and the
// PostgreSQL DSN's password) are hidden by Secrets, and a missing secret
// file is named without its content.
func TestSecretsFromFilesAreHidden(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	src := write("src", "source-pw-1")
	dsn := write("dsn", "host=db user=mirror password=pg-pw-2 dbname=m")
	cfg, err := Parse([]byte(`{"Tables": ["a.b"], "Target": "postgres", "Source": {"Host": "h", "User": "u", "PasswordFile": "`+src+`"},
		"Broker": {"URL": "nats://n:4222", "User": "s", "Password": "nats-pw-3"}, "Postgres": {"DSNFile": "`+dsn+`"}}`), "sync.json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source.Password != "source-pw-1" || !strings.Contains(cfg.Postgres.DSN, "pg-pw-2") {
		t.Fatalf("secrets not read: %+v", cfg.Source)
	}
	text := cfg.Secrets().Text("source-pw-1 pg-pw-2 nats-pw-3 postgres://u:url-pw@h/db")
	for _, s := range []string{"source-pw-1", "pg-pw-2", "nats-pw-3", "url-pw"} {
		if strings.Contains(text, s) {
			t.Fatalf("%q not hidden: %s", s, text)
		}
	}
	_, err = Parse([]byte(`{"Tables": ["a.b"], "Target": "redis", "Source": {"Host": "h", "User": "u"}, "Broker": {"URL": "nats://n"},
		"Redis": {"Addr": "r:6379", "PasswordFile": "/nonexistent/pw"}}`), "sync.json")
	if err == nil || !strings.Contains(err.Error(), "Redis.PasswordFile") {
		t.Fatalf("a missing password file: %v", err)
	}
}

func TestDSNPassword(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u:p%40ss@h:5432/db":             "p@ss",
		"postgres://h/db":                           "",
		"host=h user=u password='x y\\'z' dbname=d": "x y'z",
		"host=h password = plain dbname=d":          "plain",
		"host=h user=u":                             "",
	} {
		if got := dsnPassword(dsn); got != want {
			t.Errorf("dsnPassword(%q) = %q, want %q", dsn, got, want)
		}
	}
}

// TestExampleConfigLoads: the example in the repository root loads.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../../sync.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Target != TargetRedis || len(cfg.Tables) != 2 || cfg.Broker.ClientID != "dbsync-sync-redis" {
		t.Fatalf("example: %+v", cfg)
	}
}

func TestTableOf(t *testing.T) {
	s := &Syncer{cfg: &Config{Tables: []string{"shop.orders", "hop.orders", "shop.order_items"}}}
	for subject, want := range map[string]string{
		"dbsync.shop.orders":      "shop.orders",
		"shop.orders":             "shop.orders",
		"dbsync.shop.order_items": "shop.order_items",
		"other.subject":           "other.subject",
	} {
		if got := s.tableOf(subject); got != want {
			t.Errorf("tableOf(%q) = %q, want %q", subject, got, want)
		}
	}
}
