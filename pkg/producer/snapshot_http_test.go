package producer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSnapshotCommandsOnlyFromLoopback: the snapshot commands change what
// is published, so a request from another host is refused before anything
// is looked at; the same request from the loopback interface is served.
func TestSnapshotCommandsOnlyFromLoopback(t *testing.T) {
	p := &Producer{snap: newSnapshotControl()}
	h := p.SnapshotHandler()
	for _, tc := range []struct {
		remote string
		code   int
	}{
		{"10.1.2.3:40000", http.StatusForbidden},
		{"[2001:db8::1]:40000", http.StatusForbidden},
		{"not an address", http.StatusForbidden},
		{"127.0.0.1:40000", http.StatusOK},
		{"[::1]:40000", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, SnapshotPath+"status", nil)
		req.RemoteAddr = tc.remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("status from %s: %d, want %d (%s)", tc.remote, rec.Code, tc.code, rec.Body)
		}
		if tc.code == http.StatusForbidden && !strings.Contains(rec.Body.String(), "inside its pod") {
			t.Errorf("the refusal does not say where to run the command: %s", rec.Body)
		}
	}
	req := httptest.NewRequest(http.MethodPost, SnapshotPath+"start?tables=x.y", nil)
	req.RemoteAddr = "10.1.2.3:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || p.snap.requested != nil {
		t.Errorf("a remote start: %d, requested %+v", rec.Code, p.snap.requested)
	}
}
