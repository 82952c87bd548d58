package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
)

// bbolt's on-disk meta page layout (go.etcd.io/bbolt internal/common): a
// 16-byte page header, then magic, version, pageSize, flags (uint32 each),
// root bucket (root pgid, sequence), freelist pgid, high-water pgid, txid and
// an FNV-64a checksum of the preceding 56 bytes, all in native byte order.
const (
	boltPageHeader  = 16
	boltMetaSize    = 64
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	boltNoFreelist  = ^uint64(0)
	boltMaxPageLog2 = 14
)

type boltMeta struct {
	pageSize uint64
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// readBoltMeta decodes the meta page at off; ok is false when it is not a
// valid meta page.
func readBoltMeta(f *os.File, off int64) (m boltMeta, ok bool) {
	buf := make([]byte, boltPageHeader+boltMetaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return m, false
	}
	b := buf[boltPageHeader:]
	ne := binary.NativeEndian
	if ne.Uint32(b[0:]) != boltMagic || ne.Uint32(b[4:]) != boltVersion {
		return m, false
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:56])
	if h.Sum64() != ne.Uint64(b[56:]) {
		return m, false
	}
	return boltMeta{
		pageSize: uint64(ne.Uint32(b[8:])),
		root:     ne.Uint64(b[16:]),
		freelist: ne.Uint64(b[32:]),
		pgid:     ne.Uint64(b[40:]),
		txid:     ne.Uint64(b[48:]),
	}, true
}

// checkBoltFile rejects, before bbolt memory-maps it, a bolt file shorter
// than the database its newest valid meta page describes (a truncated copy):
// bbolt would otherwise fault on the missing pages. A missing or empty file,
// or one without any valid meta page, passes; bbolt creates the former and
// reports the latter as invalid.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bolt checkpoint file %s cannot be opened: %w", path, mark(ErrUnavailable, err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("bolt checkpoint file %s: %w", path, mark(ErrUnavailable, err))
	}
	if fi.IsDir() {
		return fmt.Errorf("bolt checkpoint file %s is a directory; point the bolt file setting at a file: %w", path, ErrUnavailable)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}

	var metas []boltMeta
	m0, ok0 := readBoltMeta(f, 0)
	if ok0 {
		metas = append(metas, m0)
		if m1, ok := readBoltMeta(f, int64(m0.pageSize)); ok {
			metas = append(metas, m1)
		}
	} else {
		// Like bbolt, look for the second meta page at every plausible page size.
		for i := 0; i <= boltMaxPageLog2; i++ {
			if m1, ok := readBoltMeta(f, int64(1024)<<i); ok && m1.pageSize == uint64(1024)<<i {
				metas = append(metas, m1)
				break
			}
		}
	}
	if len(metas) == 0 {
		return nil
	}
	m := metas[0]
	if len(metas) == 2 && metas[1].txid > m.txid {
		m = metas[1]
	}
	want := m.pgid * m.pageSize
	switch {
	case m.pageSize == 0 || want > uint64(size) || m.pgid < 4:
		return fmt.Errorf("bolt checkpoint file %s is truncated: %d bytes, but its header describes %d bytes; %s: %w",
			path, size, want, recoverHint, ErrCorrupt)
	case m.root >= m.pgid || (m.freelist != boltNoFreelist && m.freelist >= m.pgid):
		return fmt.Errorf("bolt checkpoint file %s has an inconsistent header (root page %d, freelist page %d, %d pages); %s: %w",
			path, m.root, m.freelist, m.pgid, recoverHint, ErrCorrupt)
	}
	return nil
}
