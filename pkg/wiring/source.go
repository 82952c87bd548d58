package wiring

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
)

// SourceConfig is the source connection's configuration from the Mysql
// section (its TLS built from Mysql.TLS: an unreadable CA, certificate or
// key is an error naming the setting), the table filter and policy (Tables) and the envelope's source
// name (ProName without its trailing ".", else the source's address).
func SourceConfig(cfg *config.Config) (binlog.Config, error) {
	port, err := cfg.Mysql.Port.Int()
	if err != nil {
		return binlog.Config{}, failure.WithFix(fmt.Errorf("Mysql.Port %q: %w", cfg.Mysql.Port, err),
			"set Mysql.Port (or DBSYNC_MYSQL_PORT) to the server's port, e.g. 3306")
	}
	mode := cfg.Mysql.TLS.EffectiveMysql()
	tlsCfg, err := clientTLS("Mysql.TLS", cfg.Mysql.TLS, mode, cfg.Mysql.Host)
	if err != nil {
		return binlog.Config{}, err
	}
	name := strings.TrimSuffix(cfg.ProName, ".")
	if name == "" {
		name = cfg.MysqlAddr()
	}
	return binlog.Config{
		Host:              cfg.Mysql.Host,
		Port:              uint16(port),
		Alternates:        cfg.Mysql.Hosts,
		User:              cfg.Mysql.Username,
		Password:          cfg.Mysql.Password,
		TLS:               tlsCfg,
		TLSMode:           mode,
		ServerID:          cfg.Mysql.ServerID,
		Flavor:            cfg.Mysql.Flavor,
		Charset:           cfg.Mysql.Charset,
		HeartbeatPeriod:   cfg.Mysql.HeartbeatPeriod.Duration(),
		ReadTimeout:       cfg.Mysql.ReadTimeout.Duration(),
		ConnectTimeout:    cfg.Mysql.ConnectTimeout.Duration(),
		SourceName:        name,
		Include:           cfg.Tables.Match,
		SkipUnpublishable: cfg.Tables.OnUnpublishable.Skip,
	}, nil
}

// ConnectSource opens an administrative connection to the source server.
// A refused login or an unreachable server is an error whose fix names
// the settings to check, and for a refused login the statements that
// create the account.
func ConnectSource(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (*binlog.Source, error) {
	scfg, err := SourceConfig(cfg)
	if err != nil {
		return nil, err
	}
	return connectSource(ctx, cfg, scfg, log)
}

func connectSource(ctx context.Context, cfg *config.Config, scfg binlog.Config, log logrus.FieldLogger) (*binlog.Source, error) {
	src, err := binlog.Connect(ctx, scfg, orDiscard(log))
	if err == nil {
		return src, nil
	}
	if binlog.IsRefusedLogin(err) && !errors.Is(err, binlog.ErrPlaintextLoginRefused) {
		user := sqlQuote(cfg.Mysql.Username)
		var me *mysql.MyError
		if errors.As(err, &me) && me.Code == mysql.ER_ACCESS_DENIED_NO_PASSWORD_ERROR {
			return nil, failure.WithFix(err, fmt.Sprintf("the account cannot log in with a password (it authenticates another way, e.g. unix_socket): "+
				"give it one (ALTER USER %s@'%%' IDENTIFIED BY '...') or set Mysql.Username (DBSYNC_MYSQL_USERNAME) to an account that has one", user))
		}
		return nil, failure.WithFix(err, fmt.Sprintf("check Mysql.Username and Mysql.Password (or DBSYNC_MYSQL_USERNAME, DBSYNC_MYSQL_PASSWORD); to create the account: "+
			"CREATE USER %s@'%%' IDENTIFIED BY '...'; GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO %s@'%%'", user, user))
	}
	if failure.IsPermanent(err) && failure.Fix(err) != "" {
		return nil, err // TLS and authentication refusals carry their own fix
	}
	return nil, failure.WithFix(err, fmt.Sprintf("check that the server is up and reachable at %s (Mysql.Host, Mysql.Port; DBSYNC_MYSQL_HOST, DBSYNC_MYSQL_PORT)",
		cfg.MysqlAddr()))
}

// sqlQuote quotes s as an SQL string literal.
func sqlQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
