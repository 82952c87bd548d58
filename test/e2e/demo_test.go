package e2e

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/testenv"
)

// TestDemoScript runs the README's "run it" command, scripts/demo.sh, on
// free ports and checks that it shows the workload's nine changes in order.
func TestDemoScript(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("bash", "../../scripts/demo.sh")
	cmd.Env = append(cmd.Environ(),
		"DEMO_MYSQL_PORT="+strconv.Itoa(testenv.FreePort(t)),
		"DEMO_NATS_PORT="+strconv.Itoa(testenv.FreePort(t)))
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	var types []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var env struct {
			Type  string `json:"type"`
			Table string `json:"table"`
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil || env.Table != "orders" {
			t.Fatalf("bad change line %q: %v", line, err)
		}
		types = append(types, env.Type)
	}
	want := "insert insert insert insert insert update update update delete"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("the demo showed %q, want %q:\n%s", got, want, out)
	}
	if !strings.Contains(string(out), "EMBEDDED NATS server") {
		t.Errorf("the demo does not show the embedded broker notice:\n%s", out)
	}
}
