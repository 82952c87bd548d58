package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/redact"
)

func TestSecretsHideValuesAndURLs(t *testing.T) {
	s := redact.NewSecrets("hunter2", "tok-abc", "", "x", "hunter2-longer")
	in := "auth hunter2 and hunter2-longer, token tok-abc, url nats://u:other@h, short x stays"
	got := s.Text(in)
	for _, secret := range []string{"hunter2", "tok-abc", "other"} {
		if strings.Contains(got, secret) {
			t.Errorf("Text(%q) = %q: %q is still there", in, got, secret)
		}
	}
	if !strings.Contains(got, "short x stays") {
		t.Errorf("a one-byte value was hidden: %q", got)
	}
	err := s.Error(fmt.Errorf("login: %w", io.ErrUnexpectedEOF))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("Error hides the wrapped error")
	}
	var nilSecrets *redact.Secrets
	if nilSecrets.Text("nats://u:p@h") != "nats://u:***@h" {
		t.Error("a nil Secrets does not hide URL credentials")
	}
}

// TestHookHidesSecretsInLogLines: the message, string fields, errors and
// Stringers of a log entry are hidden, text and JSON output alike.
func TestHookHidesSecretsInLogLines(t *testing.T) {
	for _, f := range []logrus.Formatter{&logrus.TextFormatter{DisableColors: true}, &logrus.JSONFormatter{}} {
		var buf bytes.Buffer
		l := logrus.New()
		l.SetOutput(&buf)
		l.SetFormatter(f)
		l.AddHook(redact.NewSecrets("hunter2").Hook())
		l.WithError(errors.New("dial: password hunter2 refused")).
			WithFields(logrus.Fields{"dsn": "u:hunter2@tcp(h)", "url": "nats://a:natspw@h", "n": 3, "s": stringer("has hunter2")}).
			Warn("connecting with hunter2")
		out := buf.String()
		for _, secret := range []string{"hunter2", "natspw"} {
			if strings.Contains(out, secret) {
				t.Errorf("%T output shows %q: %s", f, secret, out)
			}
		}
		if !strings.Contains(out, "refused") || !strings.Contains(out, "3") {
			t.Errorf("%T output lost the rest: %s", f, out)
		}
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
