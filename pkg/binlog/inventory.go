package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// CurrentUser returns the account the server authenticated the connection
// as (CURRENT_USER(), split at its last '@'): the account GRANT statements
// must name. It fails when the query fails.
func (s *Source) CurrentUser(ctx context.Context) (user, host string, err error) {
	v, err := s.queryString(ctx, "SELECT CURRENT_USER()")
	if err != nil {
		return "", "", err
	}
	i := strings.LastIndexByte(v, '@')
	if i < 0 {
		return v, "", nil
	}
	return v[:i], v[i+1:], nil
}

// Grants returns the lines of SHOW GRANTS FOR CURRENT_USER(), as the server
// prints them (one GRANT statement each). It fails when the query fails.
func (s *Source) Grants(ctx context.Context) ([]string, error) {
	r, err := s.execute(ctx, "SHOW GRANTS FOR CURRENT_USER()")
	if err != nil {
		return nil, err
	}
	grants := make([]string, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		g, _ := r.GetString(i, 0)
		grants = append(grants, g)
	}
	return grants, nil
}

// ReplicaHost is one replica registered with the server.
type ReplicaHost struct {
	// ServerID is the server_id the replica registered with.
	ServerID uint32
	// Host is the host name the replica reported ("" when it sent none).
	Host string
	Port uint32
}

// ReplicaHosts lists the replicas currently registered with the server
// (SHOW SLAVE HOSTS; SHOW REPLICAS on MySQL servers that dropped the old
// name). The statement needs REPLICATION SLAVE on MySQL and REPLICATION
// MASTER ADMIN on MariaDB 10.5.2+; without it the error wraps the server's
// access-denied error (*mysql.MyError, code 1227).
func (s *Source) ReplicaHosts(ctx context.Context) ([]ReplicaHost, error) {
	r, err := s.execute(ctx, "SHOW SLAVE HOSTS")
	if err != nil && s.flavor == mysql.MySQLFlavor {
		var me *mysql.MyError
		if !errors.As(err, &me) || me.Code != errSpecificAccess {
			r, err = s.execute(ctx, "SHOW REPLICAS")
		}
	}
	if err != nil {
		return nil, err
	}
	col := func(name string) int {
		for n, i := range r.FieldNames {
			if strings.EqualFold(n, name) {
				return i
			}
		}
		return -1
	}
	idCol, hostCol, portCol := col("Server_id"), col("Host"), col("Port")
	if idCol < 0 {
		return nil, fmt.Errorf("MySQL at %s: SHOW SLAVE HOSTS has no Server_id column", s.cfg.addr())
	}
	hosts := make([]ReplicaHost, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		var h ReplicaHost
		id, _ := r.GetUint(i, idCol)
		h.ServerID = uint32(id)
		if hostCol >= 0 {
			h.Host, _ = r.GetString(i, hostCol)
		}
		if portCol >= 0 {
			port, _ := r.GetUint(i, portCol)
			h.Port = uint32(port)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// DumpThread is a connection streaming the binlog to a replica.
type DumpThread struct {
	ID   uint64
	User string
	Host string
}

// BinlogDumps lists the binlog dump threads (replica connections) the
// connected user can see in information_schema.PROCESSLIST: its own, or
// every one with the PROCESS privilege. It fails when the query fails.
func (s *Source) BinlogDumps(ctx context.Context) ([]DumpThread, error) {
	r, err := s.execute(ctx, "SELECT ID, USER, HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
	if err != nil {
		return nil, err
	}
	threads := make([]DumpThread, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		var d DumpThread
		d.ID, _ = r.GetUint(i, 0)
		d.User, _ = r.GetString(i, 1)
		d.Host, _ = r.GetString(i, 2)
		threads = append(threads, d)
	}
	return threads, nil
}

// Variable returns a global server variable's value.
func (s *Source) Variable(ctx context.Context, name string) (string, error) {
	r, err := s.execute(ctx, "SHOW GLOBAL VARIABLES LIKE '"+strings.ReplaceAll(name, "'", "")+"'")
	if err != nil {
		return "", err
	}
	if r.RowNumber() == 0 {
		return "", nil
	}
	return r.GetString(0, 1)
}

// BinlogFile is one entry of SHOW BINARY LOGS.
type BinlogFile struct {
	Name string
	Size uint64
}

// BinaryLogs lists the binlog files the server still has, oldest first.
func (s *Source) BinaryLogs(ctx context.Context) ([]BinlogFile, error) {
	r, err := s.execute(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	files := make([]BinlogFile, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		name, _ := r.GetString(i, 0)
		size, _ := r.GetUint(i, 1)
		files = append(files, BinlogFile{Name: name, Size: size})
	}
	return files, nil
}

// tableInfo reads a table's current definition from information_schema. A
// table that no longer exists yields nil and no error.
func (s *Source) tableInfo(ctx context.Context, db, name string) (*infoTable, error) {
	r, err := s.execute(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IFNULL(CHARACTER_SET_NAME, ''), COLUMN_KEY,
		IFNULL(DATETIME_PRECISION, 0), IS_NULLABLE
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, name)
	if err != nil {
		return nil, err
	}
	if r.RowNumber() == 0 {
		return nil, nil
	}
	it := &infoTable{}
	for i := 0; i < r.RowNumber(); i++ {
		var c infoColumn
		c.name, _ = r.GetString(i, 0)
		c.dataType, _ = r.GetString(i, 1)
		c.columnType, _ = r.GetString(i, 2)
		c.charset, _ = r.GetString(i, 3)
		c.json = strings.EqualFold(c.dataType, "json")
		precision, _ := r.GetUint(i, 5)
		c.precision = int(precision)
		nullable, _ := r.GetString(i, 6)
		c.nullable = strings.EqualFold(nullable, "YES")
		it.columns = append(it.columns, c)
	}
	r, err = s.execute(ctx, `SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, db, name)
	if err != nil {
		return nil, err
	}
	for i := 0; i < r.RowNumber(); i++ {
		k, _ := r.GetString(i, 0)
		it.pk = append(it.pk, k)
	}
	if s.flavor == mysql.MariaDBFlavor {
		// MariaDB's JSON is LONGTEXT with a json_valid(`col`) check.
		r, err = s.execute(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
			WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, db, name)
		if err != nil {
			return nil, err
		}
		for i := 0; i < r.RowNumber(); i++ {
			clause, _ := r.GetString(i, 0)
			if col, ok := jsonValidColumn(clause); ok {
				if c := it.column(col); c != nil {
					c.json = true
				}
			}
		}
	}
	return it, nil
}

// jsonValidColumn recognises MariaDB's "json_valid(`col`)" check clause.
func jsonValidColumn(clause string) (string, bool) {
	c := strings.TrimSpace(clause)
	if !strings.HasPrefix(strings.ToLower(c), "json_valid(`") || !strings.HasSuffix(c, "`)") {
		return "", false
	}
	return strings.ReplaceAll(c[len("json_valid(`"):len(c)-2], "``", "`"), true
}

// collationCharsets maps collation ids to character set names.
func (s *Source) collationCharsets(ctx context.Context) (map[uint64]string, error) {
	if s.collations != nil {
		return s.collations, nil
	}
	r, err := s.execute(ctx, "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
	if err != nil {
		return nil, err
	}
	m := make(map[uint64]string, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		id, _ := r.GetUint(i, 0)
		cs, _ := r.GetString(i, 1)
		m[id] = cs
	}
	m[63] = "binary"
	s.collations = m
	return m, nil
}
