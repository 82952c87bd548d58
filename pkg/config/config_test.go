package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// noEnv is a lookup that finds no environment variable.
func noEnv(string) (string, bool) { return "", false }

// envMap returns a lookup over m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func boolPtr(b bool) *bool { return &b }

// minimal returns a small valid config as a generic map; tests mutate it.
func minimal() map[string]any {
	return map[string]any{
		"Mysql": map[string]any{"Host": "127.0.0.1", "Port": "3306", "Username": "u", "Password": "p"},
		"Stan":  map[string]any{"Host": "127.0.0.1", "Port": 4222, "ClusterID": "c", "ClientID": "id"},
	}
}

func section(m map[string]any, name string) map[string]any {
	s, ok := m[name].(map[string]any)
	if !ok {
		s = map[string]any{}
		m[name] = s
	}
	return s
}

func encode(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatalf("marshal test config: %v", err)
	}
	return b
}

func TestSeedLoadsUnchanged(t *testing.T) {
	raw, err := os.ReadFile("testdata/seed.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("\t\t\"File\": \"pos.db\"")) {
		t.Fatal("testdata/seed.json lost the seed's tab indentation; copy it byte for byte from the seed")
	}
	c, err := LoadWithEnv("testdata/seed.json", noEnv)
	if err != nil {
		t.Fatalf("seed config must load unchanged: %v", err)
	}
	want := Config{
		Version: "1.0.0",
		Mysql: Mysql{
			Host: "127.0.0.1", Port: "3306", Username: "canal", Password: "canal",
			ServerID: 1001, StartAt: "current", Charset: "utf8mb4", TLS: TLS{Mode: "preferred"},
			HeartbeatPeriod: Duration(10 * time.Second), ReadTimeout: Duration(30 * time.Second),
			ConnectTimeout: Duration(10 * time.Second),
		},
		Storage: Storage{DaoName: "bolt", PosKey: "key"},
		Bolt:    Bolt{File: "pos.db", Bucket: "pos", Timeout: Duration(time.Second)},
		Redis:   Redis{Host: "127.0.0.1", Port: "6379", Password: ""},
		MQName:  "stan",
		Stan: Stan{
			Host: "nats://nats.default.svc.cluster.local", Port: "4222", ClusterID: "stan", ClientID: "binlogsync",
			MaxInflight: 4096, AckTimeout: Duration(30 * time.Second),
		},
		JetStream: JetStream{Listen: "127.0.0.1:4222", Stream: "DBSYNC", CheckpointBucket: "DBSYNC_CHECKPOINT", Storage: "file", Replicas: 1,
			DuplicateWindow: Duration(2 * time.Minute), MaxInflight: 4096, AckTimeout: Duration(30 * time.Second), MaxPayload: 1 << 20,
			MaxAge: Duration(7 * 24 * time.Hour)},
		Kafka:    Kafka{Partitions: 1, ReplicationFactor: -1, AckTimeout: Duration(30 * time.Second)},
		HTTP:     HTTP{Listen: ":8080", StallTimeout: Duration(time.Minute)},
		Batch:    Batch{MaxRows: 1024, MaxWait: Duration(3 * time.Second), FlushWhenIdle: boolPtr(true), MaxBytes: 16 << 20},
		Memory:   Memory{Budget: 64 << 20},
		Tables:   Tables{OnUnpublishable: TablePolicy{All: "stop"}},
		Snapshot: Snapshot{Mode: "never", ChunkRows: 4096, Keyless: "read"},
		HA:       HA{LeaseTTL: Duration(15 * time.Second)},
		Log:      Log{Level: "info", Format: "text"},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("seed decoded to\n%+v\nwant\n%+v", *c, want)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"MysqlAddr", c.MysqlAddr(), "127.0.0.1:3306"},
		{"StanURL", c.StanURL(), "nats://nats.default.svc.cluster.local:4222"},
		{"RedisAddr", c.RedisAddr(), "127.0.0.1:6379"},
		{"BoltPath", c.BoltPath(), "pos.db"},
		{"Subject", c.Subject("shop", "orders"), "shop.orders"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if !c.Batch.FlushIdle() {
		t.Error("Batch.FlushIdle() = false, want the default true")
	}
}

func TestRepoConfigValidates(t *testing.T) {
	c, err := LoadWithEnv(filepath.Join("..", "..", "config.json"), noEnv)
	if err != nil {
		t.Fatalf("the repository's config.json must validate: %v", err)
	}
	if got := c.BoltPath(); got != filepath.Join("data", "pos.db") {
		t.Errorf("BoltPath = %q, want data/pos.db", got)
	}
	// The example runs the embedded JetStream broker (no JetStream.URL).
	if c.MQName != "jetstream" || c.JetStream.URL != "" || c.JetStream.Listen != DefaultJetStreamListen ||
		c.Mysql.Username != "dbsync" || c.Mysql.Password != "change-me" || c.ProName != DefaultJetStreamProName {
		t.Errorf("config.json values changed: %+v", c.Redacted())
	}
	if c.JetStream != Defaults().JetStream {
		t.Errorf("config.json JetStream %+v differs from the defaults", c.JetStream)
	}
	// The example spells out the defaults: it must equal what defaulting
	// produces, so documentation and code cannot drift apart.
	d := Defaults()
	if c.Batch.MaxRows != d.Batch.MaxRows || c.Batch.MaxWait != d.Batch.MaxWait || c.Batch.MaxBytes != d.Batch.MaxBytes ||
		c.Batch.FlushIdle() != d.Batch.FlushIdle() || c.Log != d.Log || c.Mysql.ServerID != d.Mysql.ServerID {
		t.Errorf("config.json Batch/Log/ServerID %+v %+v %d differ from the defaults %+v %+v %d",
			c.Batch, c.Log, c.Mysql.ServerID, d.Batch, d.Log, d.Mysql.ServerID)
	}
	if c.Memory != d.Memory || c.Tables.OnUnpublishable.All != PolicyStop || c.Tables.DeadLetterSubject != "" {
		t.Errorf("config.json Memory %+v, Tables %+v differ from the defaults", c.Memory, c.Tables)
	}
}

func TestPorts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string // JSON value of Mysql.Port
		want    Port
		wantErr string
	}{
		{"string", `"3306"`, "3306", ""},
		{"number", `3306`, "3306", ""},
		{"max", `65535`, "65535", ""},
		{"string out of range", `"99999"`, "", `Mysql.Port: "99999" is not a port (1-65535)`},
		{"number out of range", `70000`, "", `Mysql.Port: "70000" is not a port (1-65535)`},
		{"zero", `0`, "", `Mysql.Port: "0" is not a port (1-65535)`},
		{"negative", `-1`, "", `Mysql.Port: "-1" is not a port`},
		{"fraction", `3306.5`, "", `Mysql.Port: 3306.5 is not a port`},
		{"letters", `"33a6"`, "", `Mysql.Port: "33a6" is not a port`},
		{"signed string", `"+3306"`, "", `Mysql.Port: "+3306" is not a port`},
		{"bool", `true`, "", `Mysql.Port: got a boolean true, want a port number`},
		{"empty", `""`, "", `Mysql.Port: is required`},
		{"null", `null`, "", `Mysql.Port: is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := minimal()
			section(m, "Mysql")["Port"] = json.RawMessage(tc.raw)
			c, err := Parse(encode(t, m), "test.json", noEnv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Mysql.Port != tc.want {
				t.Errorf("Mysql.Port = %q, want %q", c.Mysql.Port, tc.want)
			}
			if n, err := c.Mysql.Port.Int(); err != nil || Port(jsonInt(n)) != tc.want {
				t.Errorf("Port.Int() = %d, %v", n, err)
			}
		})
	}
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestEnvOverridesWin(t *testing.T) {
	m := minimal()
	section(m, "Redis")["Host"] = "file-redis"
	env := map[string]string{
		"DBSYNC_MYSQL_HOST":      "db.example",
		"DBSYNC_MYSQL_PORT":      "3307",
		"DBSYNC_MYSQL_USERNAME":  "envuser",
		"DBSYNC_MYSQL_PASSWORD":  "s3cret",
		"DBSYNC_REDIS_HOST":      "redis.example",
		"DBSYNC_REDIS_PORT":      "6380",
		"DBSYNC_REDIS_PASSWORD":  "rpass",
		"DBSYNC_STAN_HOST":       "nats://nats.example",
		"DBSYNC_STAN_PORT":       "4223",
		"DBSYNC_STAN_CLUSTER_ID": "prod",
		"DBSYNC_STAN_CLIENT_ID":  "dbsync-1",
		"DBSYNC_LOG_LEVEL":       "debug",
		"DBSYNC_DATA_DIR":        "/var/lib/dbsync",
		"DBSYNC_UNRELATED":       "ignored",
	}
	c, err := Parse(encode(t, m), "test.json", envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Mysql.Host, string(c.Mysql.Port), c.Mysql.Username, c.Mysql.Password,
		c.Redis.Host, string(c.Redis.Port), c.Redis.Password, c.Stan.Host, string(c.Stan.Port),
		c.Stan.ClusterID, c.Stan.ClientID, c.Log.Level, c.DataDir}
	want := []string{"db.example", "3307", "envuser", "s3cret", "redis.example", "6380", "rpass",
		"nats://nats.example", "4223", "prod", "dbsync-1", "debug", "/var/lib/dbsync"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after env overrides got %q\nwant %q", got, want)
	}
	if c.BoltPath() != "/var/lib/dbsync/pos.db" || c.StanURL() != "nats://nats.example:4223" || c.MysqlAddr() != "db.example:3307" {
		t.Errorf("derived addresses ignore env: %s %s %s", c.BoltPath(), c.StanURL(), c.MysqlAddr())
	}

	// A bad value from the environment names both the key and the variable.
	_, err = Parse(encode(t, minimal()), "test.json", envMap(map[string]string{"DBSYNC_MYSQL_PORT": "nope"}))
	if err == nil || !strings.Contains(err.Error(), `Mysql.Port: "nope" is not a port`) ||
		!strings.Contains(err.Error(), "DBSYNC_MYSQL_PORT") {
		t.Errorf("bad env port: error = %v, want Mysql.Port and DBSYNC_MYSQL_PORT named", err)
	}
	// An empty variable means the default where there is one.
	c, err = Parse(encode(t, minimal()), "test.json", envMap(map[string]string{"DBSYNC_LOG_LEVEL": ""}))
	if err != nil || c.Log.Level != "info" {
		t.Errorf("empty DBSYNC_LOG_LEVEL: level %q, err %v; want the default info", c.Log.Level, err)
	}
}

func TestEnvOverridesList(t *testing.T) {
	list := EnvOverrides()
	if len(list) != 33 {
		t.Errorf("EnvOverrides() has %d entries, want 33", len(list))
	}
	names := map[string]bool{}
	for _, o := range list {
		if !strings.HasPrefix(o.Name, "DBSYNC_") || names[o.Name] {
			t.Errorf("override %q: want a unique DBSYNC_ name", o.Name)
		}
		names[o.Name] = true
		// Every key must resolve to a string-kinded field, and setting the
		// variable must change exactly that field.
		c := Defaults()
		f := fieldByPath(reflect.ValueOf(c).Elem(), o.Key)
		if !f.IsValid() || f.Kind() != reflect.String {
			t.Fatalf("override %s targets %q, which is not a string field", o.Name, o.Key)
		}
		applied := c.applyEnv(envMap(map[string]string{o.Name: "marker"}))
		if f.String() != "marker" || applied[o.Key] != o.Name || len(applied) != 1 {
			t.Errorf("%s did not set %s (applied %v)", o.Name, o.Key, applied)
		}
	}
	list[0].Name = "CHANGED"
	if EnvOverrides()[0].Name == "CHANGED" {
		t.Error("EnvOverrides must return a fresh slice")
	}
}

func TestUnknownKeys(t *testing.T) {
	m := minimal()
	m["Verison"] = "1.0.0"
	section(m, "Mysql")["Passwrd"] = "x"
	section(m, "Batch")["MaxRow"] = 10
	m["Rabbit"] = map[string]any{"URL": "x"}
	_, err := Parse(encode(t, m), "test.json", noEnv)
	if err == nil {
		t.Fatal("unknown keys were accepted")
	}
	for _, want := range []string{
		`unknown key "Verison" (did you mean "Version"?)`,
		`unknown key "Mysql.Passwrd" (did you mean "Password"?)`,
		`unknown key "Batch.MaxRow" (did you mean "MaxRows"?)`,
		`unknown key "Rabbit" (known keys here: Version, ProName, DataDir, Mysql,`,
		"test.json: 4 configuration problems",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	var uk *UnknownKeyError
	if !errors.As(err, &uk) {
		t.Error("errors.As(*UnknownKeyError) failed")
	}
}

func TestKeysAreCaseInsensitive(t *testing.T) {
	data := []byte(`{"mysql": {"HOST": "h", "port": 3306, "username": "u"},
		"stan": {"host": "n", "port": "4222", "clusterid": "c", "clientID": "x"}, "mqname": "stan"}`)
	c, err := Parse(data, "lower.json", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mysql.Host != "h" || c.Mysql.Port != "3306" || c.Stan.ClientID != "x" || c.Stan.ClusterID != "c" {
		t.Errorf("case-insensitive keys not applied: %+v", c.Redacted())
	}
	_, err = Parse([]byte(`{"Mysql": {"Host": "a"}, "mysql": {"Host": "b"}}`), "dup.json", noEnv)
	if err == nil || !strings.Contains(err.Error(), `Mysql: given twice, as "Mysql" and "mysql"`) {
		t.Errorf("duplicate key in two spellings: error = %v", err)
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	m := minimal()
	my := section(m, "Mysql")
	my["Port"] = "99999"
	delete(my, "Username")
	my["ServerID"] = 0
	my["Flavor"] = "oracle"
	my["HeartbeatPeriod"] = "40s" // > ReadTimeout 30s
	section(m, "Stan")["ClientID"] = "bad id!"
	b := section(m, "Batch")
	b["MaxRows"] = 0
	b["MaxWait"] = "soon"       // type error
	b["MaxBytes"] = "lots"      // type error
	b["FlushWhenIdle"] = "true" // type error
	section(m, "Tables")["Include"] = []string{"nodot", "shop.[", "shop.*"}
	section(m, "Tables")["Exclude"] = []string{"a.b.c"}
	section(m, "Log")["Level"] = "loud"
	section(m, "Storage")["DaoName"] = "etcd"

	_, err := Parse(encode(t, m), "bad.json", noEnv)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`Mysql.Port: "99999" is not a port (1-65535)`,
		`Mysql.Username: is required`,
		`Mysql.ServerID: must not be 0`,
		`Mysql.Flavor: "oracle" is not one of "", "mysql", "mariadb"`,
		`Mysql.ReadTimeout: 30s must be longer than Mysql.HeartbeatPeriod (40s)`,
		`Stan.ClientID: "bad id!" may only contain letters, digits, '-' and '_'`,
		`Batch.MaxRows: 0 is out of range 1-1000000`,
		`Batch.MaxWait: "soon" is not a duration`,
		`Batch.MaxBytes: got a string "lots", want an integer`,
		`Batch.FlushWhenIdle: got a string "true", want true or false`,
		`Tables.Include[0]: "nodot" must be "db.table" with exactly one '.'`,
		`Tables.Include[1]: "shop.[" is not a valid glob`,
		`Tables.Exclude[0]: "a.b.c" must be "db.table"`,
		`Log.Level: "loud" is not one of "trace", "debug", "info", "warn", "error"`,
		`Storage.DaoName: "etcd" is not one of "bolt", "redis"`,
		"bad.json: 15 configuration problems",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	// A value with a type error is reported once, not again as "required"
	// or "out of range" after it kept its default.
	if strings.Count(msg, "Batch.MaxWait:") != 1 || strings.Count(msg, "Batch.MaxBytes:") != 1 {
		t.Errorf("type errors reported more than once:\n%s", msg)
	}
	if strings.Contains(msg, "Tables.Include[2]") {
		t.Errorf("valid pattern reported:\n%s", msg)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key == "" {
		t.Error("errors.As(*FieldError) failed")
	}
	if t.Failed() {
		t.Logf("full error:\n%s", msg)
	}
}

func TestConditionalRequirements(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(m map[string]any)
		wantErr []string // empty: valid
	}{
		{"redis store needs redis address", func(m map[string]any) {
			section(m, "Storage")["DaoName"] = "redis"
		}, []string{"Redis.Host: is required", "Redis.Port: is required"}},
		{"nats store needs an external NATS server", func(m map[string]any) {
			section(m, "Storage")["DaoName"] = "nats"
		}, []string{"Storage.DaoName: \"nats\" keeps the checkpoint in the NATS server JetStream.URL names"}},
		{"nats store with a server and a bad bucket", func(m map[string]any) {
			section(m, "Storage")["DaoName"] = "nats"
			m["JetStream"] = map[string]any{"URL": "nats://nats:4222", "CheckpointBucket": "a.b"}
		}, []string{"JetStream.CheckpointBucket: \"a.b\" is not a key-value bucket name"}},
		{"a standby needs a shared store", func(m map[string]any) {
			m["HA"] = map[string]any{"Standby": true, "LeaseTTL": "500ms"}
		}, []string{"HA.Standby: a standby needs a checkpoint store the replicas share", "HA.LeaseTTL: 500ms is below 1s"}},
		{"nats store with a server", func(m map[string]any) {
			section(m, "Storage")["DaoName"] = "nats"
			m["JetStream"] = map[string]any{"URL": "nats://nats:4222"}
		}, nil},
		{"redis store with address", func(m map[string]any) {
			section(m, "Storage")["DaoName"] = "redis"
			m["Redis"] = map[string]any{"Host": "127.0.0.1", "Port": 6379, "DB": 2}
		}, nil},
		{"bolt store ignores redis", func(m map[string]any) {
			m["Redis"] = map[string]any{"Port": "junk"}
		}, nil},
		{"stan needs its settings", func(m map[string]any) {
			m["Stan"] = map[string]any{}
		}, []string{"Stan.Host: is required", "Stan.Port: is required", "Stan.ClusterID: is required", "Stan.ClientID: is required"}},
		{"unknown mq", func(m map[string]any) {
			m["MQName"] = "rabbitmq"
		}, []string{`MQName: "rabbitmq" is not one of "stan", "jetstream", "kafka"`}},
		{"empty strings mean defaults", func(m map[string]any) {
			m["MQName"] = ""
			m["Storage"] = map[string]any{"DaoName": "", "PosKey": ""}
			m["Log"] = map[string]any{"Level": "", "Format": ""}
		}, nil},
		{"host with port", func(m map[string]any) {
			section(m, "Mysql")["Host"] = "127.0.0.1:3306"
		}, []string{`Mysql.Host: "127.0.0.1:3306" includes a port; put the host alone here and the port in Mysql.Port`}},
		{"stan scheme", func(m map[string]any) {
			section(m, "Stan")["Host"] = "http://x"
		}, []string{`Stan.Host: "http://x": scheme "http" is not supported`}},
		{"uint32 overflow", func(m map[string]any) {
			section(m, "Mysql")["ServerID"] = 1 << 33
		}, []string{"Mysql.ServerID: got a number 8589934592, want an integer 0-4294967295"}},
		{"section not an object", func(m map[string]any) {
			m["Batch"] = "big"
		}, []string{`Batch: got a string "big", want an object`}},
		{"bad pro name", func(m map[string]any) {
			m["ProName"] = "dbsync.*"
		}, []string{`ProName: "dbsync.*" would make invalid subjects`}},
		{"start at and format", func(m map[string]any) {
			section(m, "Mysql")["StartAt"] = "newest"
			section(m, "Log")["Format"] = "xml"
		}, []string{`Mysql.StartAt: "newest" is not one of "current", "oldest"`, `Log.Format: "xml" is not one of "text", "json"`}},
		{"small batch bytes", func(m map[string]any) {
			section(m, "Batch")["MaxBytes"] = 1000
		}, []string{"Batch.MaxBytes: 1000 is below the minimum 65536"}},
		{"top level not an object", nil, []string{"top level must be a JSON object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(`[1, 2]`)
			if tc.mutate != nil {
				m := minimal()
				tc.mutate(m)
				data = encode(t, m)
			}
			_, err := Parse(data, "t.json", noEnv)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want errors %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestBadJSON(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "x.json: the file is empty"},
		{"blank", " \n\t\n", "x.json: the file is empty"},
		{"double comma", "{\n  \"Mysql\": {\n    \"Host\": \"x\",,\n  }\n}", "x.json:3:17: invalid JSON"},
		{"trailing comma", "{\n\t\"Version\": \"1\",\n}", "x.json:3:1: invalid JSON"},
		{"truncated", "{\n  \"Mysql\": {\n    \"Host\": \"x\"", "x.json:3:16: invalid JSON: unexpected end of JSON input"},
		{"garbage after object", "{}\n}", "x.json:2:1: invalid JSON"},
		{"unicode column", "{\"Version\": \"é\" x}", "x.json:1:17: invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data), "x.json", noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.json")
	_, err := LoadWithEnv(p, noEnv)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "-config PATH") ||
		!errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error = %v; want the path, a -config PATH hint and fs.ErrNotExist", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.json")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWithEnv(empty, noEnv); err == nil || !strings.Contains(err.Error(), empty+": the file is empty") {
		t.Fatalf("empty file: error = %v", err)
	}
}

func TestLoadUsesProcessEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(p, encode(t, minimal()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DBSYNC_MYSQL_PASSWORD", "from-env")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mysql.Password != "from-env" {
		t.Errorf("Load ignored DBSYNC_MYSQL_PASSWORD: %q", c.Mysql.Password)
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    time.Duration
		wantErr string
	}{
		{`"3s"`, 3 * time.Second, ""},
		{`"250ms"`, 250 * time.Millisecond, ""},
		{`"1m30s"`, 90 * time.Second, ""},
		{`250`, 250 * time.Millisecond, ""},
		{`1.5`, 1500 * time.Microsecond, ""},
		{`0`, 0, ""},
		{`null`, 7, ""}, // unchanged
		{`"-1s"`, -time.Second, ""},
		{`"soon"`, 0, `"soon" is not a duration`},
		{`"3"`, 0, `"3" is not a duration`},
		{`true`, 0, "got a boolean true, want a duration"},
		{`{}`, 0, "got an object {}, want a duration"},
		{`1e300`, 0, "out of range"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			d := Duration(7)
			err := json.Unmarshal([]byte(tc.raw), &d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Duration() != tc.want {
				t.Errorf("got %v, want %v", d.Duration(), tc.want)
			}
		})
	}
	b, err := json.Marshal(struct{ D Duration }{Duration(1500 * time.Millisecond)})
	if err != nil || string(b) != `{"D":"1.5s"}` {
		t.Errorf("MarshalJSON = %s, %v; want {\"D\":\"1.5s\"}", b, err)
	}
	var back struct{ D Duration }
	if err := json.Unmarshal(b, &back); err != nil || back.D != Duration(1500*time.Millisecond) {
		t.Errorf("round trip = %v, %v", back.D, err)
	}
}

func TestStanURL(t *testing.T) {
	for _, tc := range []struct {
		host string
		port Port
		want string
	}{
		{"nats://nats.default.svc.cluster.local", "4222", "nats://nats.default.svc.cluster.local:4222"},
		{"nats://127.0.0.1", "4222", "nats://127.0.0.1:4222"},
		{"127.0.0.1", "4223", "nats://127.0.0.1:4223"},
		{"nats://10.0.0.1:5000", "4222", "nats://10.0.0.1:5000"},
		{"10.0.0.1:5000", "4222", "nats://10.0.0.1:5000"},
		{"tls://secure.example", "4443", "tls://secure.example:4443"},
		{"nats://nats.example/", "4222", "nats://nats.example:4222"},
		{"::1", "4222", "nats://[::1]:4222"},
		{"nats://[::1]", "4222", "nats://[::1]:4222"},
		{"nats://user:pw@host", "4222", "nats://user:pw@host:4222"},
	} {
		c := &Config{Stan: Stan{Host: tc.host, Port: tc.port}}
		if got := c.StanURL(); got != tc.want {
			t.Errorf("StanURL(Host %q, Port %q) = %q, want %q", tc.host, tc.port, got, tc.want)
		}
	}
}

func TestAddrs(t *testing.T) {
	c := &Config{Mysql: Mysql{Host: "::1", Port: "3306"}, Redis: Redis{Host: "[fe80::1]", Port: "6379"}}
	if got := c.MysqlAddr(); got != "[::1]:3306" {
		t.Errorf("MysqlAddr = %q", got)
	}
	if got := c.RedisAddr(); got != "[fe80::1]:6379" {
		t.Errorf("RedisAddr = %q", got)
	}
}

func TestBoltPath(t *testing.T) {
	for _, tc := range []struct{ dir, file, want string }{
		{"", "pos.db", "pos.db"},
		{"data", "pos.db", filepath.Join("data", "pos.db")},
		{"/var/lib/dbsync", "pos.db", "/var/lib/dbsync/pos.db"},
		{"/var/lib/dbsync", "/abs/pos.db", "/abs/pos.db"},
		{"data", "sub/pos.db", filepath.Join("data", "sub", "pos.db")},
	} {
		c := &Config{DataDir: tc.dir, Bolt: Bolt{File: tc.file}}
		if got := c.BoltPath(); got != tc.want {
			t.Errorf("BoltPath(DataDir %q, File %q) = %q, want %q", tc.dir, tc.file, got, tc.want)
		}
	}
}

func TestSubject(t *testing.T) {
	for _, tc := range []struct{ pro, db, table, want string }{
		{"", "shop", "orders", "shop.orders"},
		{"dbsync.", "shop", "orders", "dbsync.shop.orders"},
		{"prod_", "hole", "holes", "prod_hole.holes"},
	} {
		c := &Config{ProName: tc.pro}
		if got := c.Subject(tc.db, tc.table); got != tc.want {
			t.Errorf("Subject(%q; %q, %q) = %q, want %q", tc.pro, tc.db, tc.table, got, tc.want)
		}
	}
}

func TestTablesMatch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tables    Tables
		db, table string
		want      bool
	}{
		{"empty matches all", Tables{}, "shop", "orders", true},
		{"include db glob", Tables{Include: []string{"shop.*"}}, "shop", "orders", true},
		{"include other db", Tables{Include: []string{"shop.*"}}, "blog", "posts", false},
		{"include exact", Tables{Include: []string{"blog.posts"}}, "blog", "posts", true},
		{"include any of several", Tables{Include: []string{"shop.*", "blog.posts"}}, "blog", "posts", true},
		{"exclude tmp", Tables{Exclude: []string{"*.tmp_*"}}, "shop", "tmp_orders", false},
		{"exclude leaves others", Tables{Exclude: []string{"*.tmp_*"}}, "shop", "orders", true},
		{"exclude wins over include", Tables{Include: []string{"shop.*"}, Exclude: []string{"shop.secret"}}, "shop", "secret", false},
		{"question mark", Tables{Include: []string{"db?.t"}}, "db1", "t", true},
		{"question mark one char", Tables{Include: []string{"db?.t"}}, "db12", "t", false},
		{"dot separates db from table", Tables{Include: []string{"a.b*"}}, "a.b", "c", false},
		{"db name with a dot", Tables{Include: []string{"a*.c"}}, "a.b", "c", true},
		{"class", Tables{Include: []string{"shop.order[0-9]"}}, "shop", "order7", true},
		{"invalid pattern matches nothing", Tables{Include: []string{"shop.["}}, "shop", "[", false},
		{"quoted table with a dot", Tables{Exclude: []string{"shop.`orders.2024`"}}, "shop", "orders.2024", false},
		{"quoted table is literal", Tables{Include: []string{"shop.`ord*`"}}, "shop", "orders", false},
		{"quoted table, literal star", Tables{Include: []string{"shop.`ord*`"}}, "shop", "ord*", true},
		{"quoted db with a dot", Tables{Include: []string{"`my.db`.*"}}, "my.db", "t", true},
		{"doubled backquote", Tables{Include: []string{"shop.`a``b`"}}, "shop", "a`b", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.tables.Match(tc.db, tc.table); got != tc.want {
				t.Errorf("%+v.Match(%q, %q) = %v, want %v", tc.tables, tc.db, tc.table, got, tc.want)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	c := Defaults()
	c.Mysql.Password = "mysql-secret"
	c.Redis.Password = "redis-secret"
	c.Stan.Host = "nats://alice:nats-secret@nats.example"
	c.Tables.Include = []string{"shop.*"}
	r := c.Redacted()
	if r.Mysql.Password != "***" || r.Redis.Password != "***" || r.Stan.Host != "nats://alice:***@nats.example" {
		t.Errorf("Redacted = %+v %+v %q", r.Mysql, r.Redis, r.Stan.Host)
	}
	dump, _ := json.Marshal(r)
	for _, secret := range []string{"mysql-secret", "redis-secret", "nats-secret"} {
		if strings.Contains(string(dump), secret) {
			t.Errorf("redacted config still contains %q: %s", secret, dump)
		}
	}
	if c.Mysql.Password != "mysql-secret" || c.Stan.Host != "nats://alice:nats-secret@nats.example" {
		t.Error("Redacted modified the original")
	}
	r.Tables.Include[0] = "changed"
	*r.Batch.FlushWhenIdle = false
	if c.Tables.Include[0] != "shop.*" || !*c.Batch.FlushWhenIdle {
		t.Error("Redacted shares slices or pointers with the original")
	}
	c.Stan.Host = "nats://token@nats.example"
	if got := c.Redacted().Stan.Host; got != "nats://***@nats.example" {
		t.Errorf("token URL redacted to %q", got)
	}
	c.Mysql.Password = ""
	if got := c.Redacted().Mysql.Password; got != "" {
		t.Errorf("empty password redacted to %q; want it left empty", got)
	}
}

func TestProgrammaticConfig(t *testing.T) {
	c := &Config{
		Mysql: Mysql{Host: "127.0.0.1", Port: "3306", Username: "u"},
		Stan:  Stan{Host: "127.0.0.1", Port: "4222", ClusterID: "c", ClientID: "id"},
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Batch.MaxRows") {
		t.Errorf("Validate without defaults = %v, want Batch.MaxRows reported", err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after ApplyDefaults: %v", err)
	}
	if c.Mysql.ServerID != DefaultServerID || c.Batch.MaxRows != DefaultBatchMaxRows || !c.Batch.FlushIdle() {
		t.Errorf("ApplyDefaults left zero values: %+v", c.Redacted())
	}
	f := false
	c.Batch.FlushWhenIdle = &f
	c.ApplyDefaults()
	if c.Batch.FlushIdle() {
		t.Error("ApplyDefaults overrode an explicit FlushWhenIdle false")
	}
}

func TestExplicitValuesOverDefaults(t *testing.T) {
	m := minimal()
	section(m, "Batch")["FlushWhenIdle"] = false
	section(m, "Batch")["MaxWait"] = 500
	section(m, "Mysql")["ServerID"] = 77
	section(m, "Mysql")["Flavor"] = "mariadb"
	m["Tables"] = map[string]any{"Include": []string{"shop.*"}, "Exclude": []string{"*.tmp_*"}}
	c, err := Parse(encode(t, m), "t.json", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Batch.FlushIdle() || c.Batch.MaxWait.Duration() != 500*time.Millisecond || c.Mysql.ServerID != 77 ||
		c.Mysql.Flavor != "mariadb" || !c.Tables.Match("shop", "a") || c.Tables.Match("shop", "tmp_a") {
		t.Errorf("explicit values lost: %+v", c.Redacted())
	}
}

func TestJetStreamSettings(t *testing.T) {
	cfg := minimal()
	cfg["MQName"] = "jetstream"
	cfg["ProName"] = "app"
	cfg["JetStream"] = map[string]any{"Storage": "disk", "Replicas": 9, "Stream": "a.b"}
	_, err := Parse(encode(t, cfg), "test.json", noEnv)
	if err == nil {
		t.Fatal("invalid JetStream settings accepted")
	}
	for _, key := range []string{"JetStream.Storage", "JetStream.Replicas", "JetStream.Stream", "ProName"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error lacks %s:\n%v", key, err)
		}
	}
	delete(cfg, "ProName")
	cfg["JetStream"] = map[string]any{}
	c, err := Parse(encode(t, cfg), "test.json", envMap(map[string]string{"DBSYNC_JETSTREAM_URL": "nats://nats:4222"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.JetStream.URL != "nats://nats:4222" || c.StreamSubjects()[0] != "dbsync.*.*" || c.Subject("shop", "orders") != "dbsync.shop.orders" || c.JetStream.Stream != "DBSYNC" {
		t.Errorf("jetstream config %+v, subjects %v", c.JetStream, c.StreamSubjects())
	}
}

func TestTablePatternErrors(t *testing.T) {
	for _, p := range []string{"nodot", "a.b.c", "shop.`unclosed", "sh`op.t", ".t", "shop.", "shop.`a`b"} {
		if _, err := ParseTablePattern(p); err == nil {
			t.Errorf("ParseTablePattern(%q) accepted it", p)
		}
	}
}

func TestUnpublishablePolicy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		json      string
		db, table string
		skip      bool
	}{
		{"default is stop", ``, "shop", "docs", false},
		{"one policy for all", `"skip"`, "shop", "docs", true},
		{"per table", `{"shop.docs": "skip"}`, "shop", "docs", true},
		{"unmatched tables stop", `{"shop.docs": "skip"}`, "shop", "orders", false},
		{"exact name wins over a glob", `{"shop.*": "stop", "shop.docs": "skip"}`, "shop", "docs", true},
		{"stop wins among globs", `{"shop.*": "skip", "*.docs": "stop"}`, "shop", "docs", false},
		{"a glob alone", `{"shop.*": "skip"}`, "shop", "orders", true},
		{"quoted name with a dot", `{"shop.` + "`a.b`" + `": "skip"}`, "shop", "a.b", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := minimal()
			if tc.json != "" {
				section(m, "Tables")["OnUnpublishable"] = json.RawMessage(tc.json)
			}
			c, err := Parse(encode(t, m), "test.json", noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Tables.OnUnpublishable.Skip(tc.db, tc.table); got != tc.skip {
				t.Errorf("Skip(%s.%s) = %v, want %v", tc.db, tc.table, got, tc.skip)
			}
		})
	}
	m := minimal()
	section(m, "Tables")["OnUnpublishable"] = map[string]any{"shop.docs": "drop", "a.b.c": "skip"}
	section(m, "Tables")["DeadLetterSubject"] = "bad subject"
	_, err := Parse(encode(t, m), "test.json", noEnv)
	for _, want := range []string{`Tables.OnUnpublishable["shop.docs"]: "drop" is not one of "stop", "skip"`,
		`Tables.OnUnpublishable["a.b.c"]: "a.b.c" must be "db.table"`, `Tables.DeadLetterSubject: "bad subject" is not a literal subject`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestMemoryAndEmbeddedBrokerSettings(t *testing.T) {
	m := minimal()
	section(m, "Memory")["Budget"] = 1 << 20
	m["MQName"] = "jetstream"
	section(m, "JetStream")["URL"] = "nats://127.0.0.1:4222"
	section(m, "JetStream")["MaxPayload"] = 8 << 20
	_, err := Parse(encode(t, m), "test.json", noEnv)
	for _, want := range []string{"Memory.Budget: 1048576 is below twice Batch.MaxBytes", "JetStream.MaxPayload: applies to the embedded server only"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	m = minimal()
	m["MQName"] = "jetstream"
	section(m, "JetStream")["MaxPayload"] = 8 << 20
	c, err := Parse(encode(t, m), "test.json", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.JetStream.MaxPayload != 8<<20 || c.Memory.Budget != DefaultMemoryBudget || c.DeadLetter() != "dbsync._dbsync.deadletter" {
		t.Errorf("MaxPayload %d, Budget %d, DeadLetter %q", c.JetStream.MaxPayload, c.Memory.Budget, c.DeadLetter())
	}
}

// TestMysqlHosts: the other servers of the topology are host:port each; a
// bad entry is named by its index.
func TestMysqlHosts(t *testing.T) {
	m := minimal()
	section(m, "Mysql")["Hosts"] = []string{"replica-1:3306", "[::1]:3307"}
	c, err := Parse(encode(t, m), "test.json", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mysql.Hosts) != 2 || c.Mysql.Hosts[1] != "[::1]:3307" {
		t.Fatalf("Mysql.Hosts = %v", c.Mysql.Hosts)
	}
	for entry, want := range map[string]string{
		"replica-1":            `Mysql.Hosts[0]: "replica-1" is not host:port`,
		"replica-1:99999":      `Mysql.Hosts[0]: "replica-1:99999": "99999" is not a port (1-65535)`,
		"mysql://replica:3306": `Mysql.Hosts[0]: "mysql://replica:3306" is not host:port`,
		":3306":                `Mysql.Hosts[0]: ":3306" is not host:port`,
	} {
		section(m, "Mysql")["Hosts"] = []string{entry}
		if _, err := Parse(encode(t, m), "test.json", noEnv); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Mysql.Hosts [%q]: error %v, want %q", entry, err, want)
		}
	}
}

// TestKafkaSettings: defaults with MQName kafka, and the problems of a bad
// Kafka section, each named by its key.
func TestKafkaSettings(t *testing.T) {
	m := minimal()
	m["MQName"] = "kafka"
	m["Kafka"] = map[string]any{"Brokers": []string{"kafka-0:9092", "kafka-1:9092"}}
	c, err := Parse(encode(t, m), "test.json", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.ProName != "dbsync." || c.Kafka.ClientID != "dbsync" || c.Kafka.Key != "table" || c.Kafka.Partitions != 1 || c.Kafka.ReplicationFactor != -1 || c.Kafka.AckTimeout.Duration() != DefaultAckTimeout {
		t.Fatalf("defaults: ProName %q, Kafka %+v", c.ProName, c.Kafka)
	}
	m["Kafka"] = map[string]any{"Brokers": []string{"kafka-0"}, "Partitions": -2, "ReplicationFactor": 0, "Retention": "-1h",
		"SASL": map[string]any{"Mechanism": "GSSAPI", "User": "dbsync", "Password": "hunter2hunter2"}}
	_, err = Parse(encode(t, m), "test.json", noEnv)
	for _, want := range []string{`Kafka.Brokers[0]: "kafka-0" is not host:port`, "Kafka.Partitions: -2 is out of range", "Kafka.Retention: -1h0m0s is negative",
		`Kafka.SASL.Mechanism: "GSSAPI" is not one of "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a configuration problem shows the SASL password: %v", err)
	}
	m["Kafka"] = map[string]any{"Brokers": []string{"k:9092"}, "Partitions": 6}
	if _, err = Parse(encode(t, m), "test.json", noEnv); err == nil || !strings.Contains(err.Error(), `Kafka.Partitions: 6 partitions need Kafka.Key "primary_key"`) {
		t.Errorf("6 partitions keyed by table: %v", err)
	}
	m["Kafka"] = map[string]any{"Brokers": []string{"k:9092"}, "Partitions": 6, "Key": "primary_key"}
	if _, err = Parse(encode(t, m), "test.json", noEnv); err != nil {
		t.Errorf("6 partitions keyed by primary key: %v", err)
	}
	m["Kafka"] = map[string]any{}
	if _, err = Parse(encode(t, m), "test.json", noEnv); err == nil || !strings.Contains(err.Error(), "Kafka.Brokers: is required with MQName kafka") {
		t.Errorf("no brokers: %v", err)
	}
}
