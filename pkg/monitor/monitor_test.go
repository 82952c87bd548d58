package monitor

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/redact"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// TestPprofOnlyWhenAsked: profiles are not served unless ServeOptions.Pprof.
func TestPprofOnlyWhenAsked(t *testing.T) {
	m := New(time.Minute)
	if code, _ := get(t, m.Handler(ServeOptions{}), "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without Pprof: status %d, want 404", code)
	}
	if code, _ := get(t, m.Handler(ServeOptions{Pprof: true}), "/debug/pprof/"); code != http.StatusOK {
		t.Errorf("/debug/pprof/ with Pprof: status %d, want 200", code)
	}
	var seconds string
	h := capSeconds(func(_ http.ResponseWriter, r *http.Request) { seconds = r.FormValue("seconds") })
	h(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/debug/pprof/profile?seconds=3600", nil))
	if seconds != "30" {
		t.Errorf("a one-hour profile ran for %q seconds, want the cap of 30", seconds)
	}
}

// TestReadyzBodyIsRedacted: the reasons /readyz lists pass through the
// redactor (a broker's error may quote a URL with credentials).
func TestReadyzBodyIsRedacted(t *testing.T) {
	m := New(time.Minute)
	m.SourceConnected(true, nil)
	m.brokerState(errors.New("dial nats://alice:hunter2@nats:4222: refused; token tok-secret"))
	code, body := get(t, m.Handler(ServeOptions{Redact: redact.NewSecrets("tok-secret").Text}), "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "broker not connected") {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	for _, secret := range []string{"hunter2", "tok-secret"} {
		if strings.Contains(body, secret) {
			t.Errorf("/readyz shows %q: %s", secret, body)
		}
	}
}
