package sink

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dbsync/dbsync/pkg/envelope"
)

// VersionTailLen is the length of a version's tail: file number (20
// digits), ":", pos (10 digits), ":", row (10 digits).
const VersionTailLen = 20 + 1 + 10 + 1 + 10

// Version splits a change's coordinate into what a sink stores beside the
// row it wrote. Head names the binlog history (history, source name,
// binlog base name); tail is fixed-width, so two tails of one head compare
// as strings the way their coordinates compare (mysql-bin.1000000 after
// mysql-bin.999999). The stored version is head + "|" + tail; a change of
// another head is of another history, which the SDK already judged.
func Version(s envelope.Source) (head, tail string) {
	base, num := s.File, uint64(0)
	if i := strings.LastIndexByte(s.File, '.'); i >= 0 {
		if n, err := strconv.ParseUint(s.File[i+1:], 10, 64); err == nil {
			base, num = s.File[:i], n
		}
	}
	return s.History + "|" + s.Name + "|" + base, fmt.Sprintf("%020d:%010d:%010d", num, s.Pos, s.Row)
}
