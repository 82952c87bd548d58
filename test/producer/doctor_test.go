package producer_test

import (
	"strings"
	"testing"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestDoctorCommand: `producer doctor` prints every finding and exits 0 on a
// good setup; the same FAIL checks stop a producer from starting on a
// server logging statements, with the fix in the message.
func TestDoctorCommand(t *testing.T) {
	t.Parallel()
	t.Run("good", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		code, out, stderr := e.Command("doctor")
		if code != 0 {
			t.Fatalf("exit %d:\n%s\n%s", code, out, stderr)
		}
		for _, want := range []string{"log_bin", "binlog_format", "grants", "broker", "checkpoint", "0 FAIL"} {
			if !strings.Contains(out, want) {
				t.Errorf("doctor output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("kafka", func(t *testing.T) {
		t.Parallel()
		e := e2e.NewEnvBroker(t, producerBin, e2e.Kafka)
		code, out, stderr := e.Command("doctor")
		if code != 0 || !strings.Contains(out, "Kafka at "+e.Kafka.Brokers[0]+": 1 broker(s)") || !strings.Contains(out, "0 FAIL") {
			t.Fatalf("doctor with Kafka: exit %d:\n%s\n%s", code, out, stderr)
		}
	})
	t.Run("statement format", func(t *testing.T) {
		t.Parallel()
		e := e2e.NewEnvWith(t, producerBin, e2e.Stan, testenv.MariaDBOptions{BinlogFormat: "STATEMENT"})
		code, out, _ := e.Command("doctor")
		if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "SET GLOBAL binlog_format='ROW'") {
			t.Errorf("doctor: exit %d:\n%s", code, out)
		}
		p := e.Start()
		if code := p.Wait(60e9); code != 1 {
			t.Fatalf("start on a STATEMENT server: exit %d, want 1:\n%s", code, p.Output())
		}
		if !strings.Contains(p.Output(), "binlog_format") || !strings.Contains(p.Output(), "ROW") {
			t.Errorf("the refusal does not name binlog_format and the fix:\n%s", p.Output())
		}
	})
}
