package redact_test

import (
	"errors"
	"io"
	"testing"

	"github.com/dbsync/dbsync/pkg/redact"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                         "nats://127.0.0.1:4222",
		"nats://alice:s3cret@nats:4222":                 "nats://alice:***@nats:4222",
		"nats://alice:p#ss-SECRET@127.0.0.1:1":          "nats://alice:***@127.0.0.1:1",
		"nats://SECRETTOKEN@host:4222":                  "nats://***@host:4222",
		"nats://a:one@h1:4222,nats://b:two@h2:4222":     "nats://a:***@h1:4222,nats://b:***@h2:4222",
		"tls://u:p@w@rd@host":                           "tls://u:***@host",
		"alice:pw@host:4222":                            "alice:***@host:4222",
		`parse "nats://u:sec ret@h": invalid character`: `parse "nats://u:***@h": invalid character`,
	} {
		if got := redact.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		`connect to NATS at nats://alice:p#ss@h:1: parse "nats://alice:p#ss@h:1": bad`: `connect to NATS at nats://alice:***@h:1: parse "nats://alice:***@h:1": bad`,
		"servers nats://a:one@h1,nats://TOKEN@h2 down":                                 "servers nats://a:***@h1,nats://***@h2 down",
		"mail bob@example.com about redis://default:pw@r:6379/0":                       "mail bob@example.com about redis://default:***@r:6379/0",
		"no secret here": "no secret here",
	} {
		if got := redact.Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestError(t *testing.T) {
	err := redact.Error(errors.Join(io.EOF, errors.New("dial nats://u:pw@h failed")), redact.URL)
	if err.Error() != "EOF\ndial nats://u:***@h failed" || !errors.Is(err, io.EOF) {
		t.Fatalf("Error = %q (is EOF %v)", err, errors.Is(err, io.EOF))
	}
	if redact.Error(nil, redact.URL) != nil {
		t.Fatal("Error(nil) is not nil")
	}
	if plain := errors.New("nothing secret"); redact.Error(plain, redact.URL) != plain {
		t.Fatal("an error without secrets was wrapped")
	}
}
