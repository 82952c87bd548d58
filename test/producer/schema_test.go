package producer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestMetadataNotFullIsRefused: a server that could log FULL row metadata
// but does not is refused at start, with the fix.
func TestMetadataNotFullIsRefused(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvWith(t, producerBin, e2e.Stan, testenv.MariaDBOptions{RowMetadata: "MINIMAL"})
	p := e.Start()
	if code := p.Wait(60 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
	}
	if !strings.Contains(p.Output(), "binlog_row_metadata") || !strings.Contains(p.Output(), "SET GLOBAL binlog_row_metadata='FULL'") {
		t.Errorf("the refusal lacks the setting or the fix:\n%s", p.Output())
	}
}
