package redact_test

import (
	"strings"
	"testing"

	"github.com/dbsync/dbsync/pkg/redact"
)

// TestStatementHidesPasswords covers the ways MySQL and MariaDB put a
// password into a statement that reaches the binlog.
func TestStatementHidesPasswords(t *testing.T) {
	for _, q := range []string{
		"CREATE USER 'bob'@'%' IDENTIFIED BY 'pw-1'",
		"CREATE USER IF NOT EXISTS `bob`@`%` IDENTIFIED BY PASSWORD '*pw-1'",
		"ALTER USER 'bob'@'%' IDENTIFIED WITH mysql_native_password BY 'pw-1'",
		"ALTER USER 'bob'@'%' IDENTIFIED WITH caching_sha2_password AS '$A$005$pw-1'",
		"CREATE USER 'bob'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('pw-1') OR unix_socket",
		"CREATE USER bob IDENTIFIED VIA mysql_native_password USING 'pw-1'",
		"GRANT SELECT ON *.* TO 'bob'@'%' IDENTIFIED BY \"pw-1\"",
		"SET PASSWORD FOR 'bob'@'%' = PASSWORD('pw-1')",
		"SET PASSWORD FOR 'bob'@'%' = 'pw-1'",
		"SET PASSWORD = 'pw-1'",
		"CHANGE MASTER TO MASTER_HOST='h', MASTER_PASSWORD='pw-1'",
		"CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD 'pw-1')",
		"CREATE USER 'bob'@'%' IDENTIFIED BY 'pw-\\'1'",
		"create user 'bob'@'%' identified by 'pw-''1'",
	} {
		got := redact.Statement(q)
		if strings.Contains(got, "pw-") {
			t.Errorf("Statement(%q) = %q: the password is still there", q, got)
		}
		if !strings.Contains(got, "bob") && strings.Contains(q, "bob") {
			t.Errorf("Statement(%q) = %q: the account was lost", q, got)
		}
	}
	plain := "ALTER TABLE shop.orders ADD COLUMN note VARCHAR(20) DEFAULT 'by hand'"
	if got := redact.Statement(plain); got != "ALTER TABLE shop.orders ADD COLUMN note VARCHAR(20) DEFAULT 'by hand'" {
		t.Errorf("Statement changed a statement without a password: %q", got)
	}
}

func TestSummarizeDDL(t *testing.T) {
	for q, want := range map[string]redact.DDLSummary{
		"CREATE TABLE shop.orders (id INT)":                               {Kind: "CREATE TABLE", Object: "shop.orders"},
		"create table if not exists `shop`.`my orders`(id int)":           {Kind: "CREATE TABLE", Object: "`shop`.`my orders`"},
		"/* a comment */ ALTER TABLE t ADD c INT":                         {Kind: "ALTER TABLE", Object: "t"},
		"CREATE OR REPLACE TEMPORARY TABLE t2 AS SELECT 1":                {Kind: "CREATE TABLE", Object: "t2"},
		"DROP DATABASE IF EXISTS shop":                                    {Kind: "DROP DATABASE", Object: "shop"},
		"CREATE USER 'bob'@'%' IDENTIFIED BY 'pw'":                        {Kind: "CREATE USER", Object: "'bob'@'%'"},
		"GRANT SELECT ON *.* TO 'bob'@'%'":                                {Kind: "GRANT", Object: "'bob'@'%'"},
		"SET PASSWORD FOR 'bob'@'%' = 'pw'":                               {Kind: "SET PASSWORD", Object: "'bob'@'%'"},
		"CREATE UNIQUE INDEX i ON t (c)":                                  {Kind: "CREATE INDEX", Object: "i"},
		"TRUNCATE t":                                                      {Kind: "TRUNCATE"},
		"CREATE DEFINER=`root`@`localhost` TRIGGER tr BEFORE INSERT ON t": {Kind: "CREATE TRIGGER", Object: "tr"},
	} {
		if got := redact.SummarizeDDL(q); got != want {
			t.Errorf("SummarizeDDL(%q) = %+v, want %+v", q, got, want)
		}
	}
}
