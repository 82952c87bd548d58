package binlog

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// ProbeDump asks the server to stream its binlog from its current position,
// the way a replica does, and returns nil once it accepts (its first event
// arrives). It connects separately, as server_id 0 with the non-blocking
// flag, like mysqlbinlog: it registers no replica and disturbs none. A
// server (or proxy) that refuses the request is a permanent error (pkg/failure) saying so.
func (s *Source) ProbeDump(ctx context.Context) error {
	pos, err := s.CurrentPosition(ctx)
	if err != nil {
		return err
	}
	probe := &Source{cfg: s.cfg, log: s.log}
	if err := probe.connect(ctx); err != nil {
		return err
	}
	defer probe.Close()
	c := probe.conn
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Execute("SET @master_binlog_checksum='NONE', @source_binlog_checksum='NONE'"); err != nil {
		return fmt.Errorf("MySQL at %s: prepare a binlog dump: %w", s.cfg.addr(), s.cfg.classify(err))
	}
	if s.flavor == mysql.MariaDBFlavor {
		if _, err := c.Execute("SET @mariadb_slave_capability=4"); err != nil {
			return fmt.Errorf("MySQL at %s: prepare a binlog dump: %w", s.cfg.addr(), s.cfg.classify(err))
		}
	}
	const dumpNonBlock = 0x01
	c.ResetSequence()
	data := make([]byte, 4+1+4+2+4+len(pos.File))
	data[4] = mysql.COM_BINLOG_DUMP
	binary.LittleEndian.PutUint32(data[5:], pos.Pos)
	binary.LittleEndian.PutUint16(data[9:], dumpNonBlock)
	binary.LittleEndian.PutUint32(data[11:], 0)
	copy(data[15:], pos.File)
	if err := c.WritePacket(data); err != nil {
		return fmt.Errorf("MySQL at %s: send a binlog dump request: %w", s.cfg.addr(), err)
	}
	reply, err := c.ReadPacket()
	if err != nil {
		return fmt.Errorf("MySQL at %s: read the answer to a binlog dump request: %w", s.cfg.addr(), err)
	}
	switch reply[0] {
	case mysql.OK_HEADER, mysql.EOF_HEADER:
		return nil
	case mysql.ERR_HEADER:
		return s.cfg.classifyDump(fmt.Errorf("binlog dump at %s: %w", pos, c.HandleErrorPacket(reply)))
	}
	return fmt.Errorf("MySQL at %s answered a binlog dump request with an unexpected packet (0x%02x)", s.cfg.addr(), reply[0])
}
