package config_test

import (
	"fmt"

	"github.com/dbsync/dbsync/pkg/config"
)

// A dbsync 1 config.json loads unchanged: every newer setting has a
// default, and DBSYNC_* environment variables override the file.
func ExampleParse() {
	file := []byte(`{
	  "Mysql": {"Host": "db", "Port": "3306", "Username": "dbsync", "Password": "secret"},
	  "Storage": {"DaoName": "bolt", "PosKey": "key"},
	  "Bolt": {"File": "pos.db", "Bucket": "pos"},
	  "MQName": "jetstream",
	  "JetStream": {"URL": "nats://nats:4222"}
	}`)
	env := map[string]string{"DBSYNC_MYSQL_PASSWORD": "from-a-secret"}
	cfg, err := config.Parse(file, "config.json", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("source:", cfg.MysqlAddr(), "password from env:", cfg.Mysql.Password == "from-a-secret")
	fmt.Println("stream:", cfg.JetStream.Stream, "subjects:", cfg.StreamSubjects())
	fmt.Println("orders go to:", cfg.Subject("shop", "orders"))

	// A bad file is one error listing every problem with its key.
	_, err = config.Parse([]byte(`{"MQName": "jetstream", "Mysql": {"Host": "db", "Prot": 3306, "Username": "u"}}`), "config.json", nil)
	fmt.Println(err)
	// Output:
	// source: db:3306 password from env: true
	// stream: DBSYNC subjects: [dbsync.*.*]
	// orders go to: dbsync.shop.orders
	// config.json: 2 configuration problems:
	//   unknown key "Mysql.Prot" (did you mean "Port"?)
	//   Mysql.Port: is required (a port 1-65535)
}
