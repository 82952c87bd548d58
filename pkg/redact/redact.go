// Package redact hides secrets in text bound for logs, errors, HTTP bodies
// and the doctor's output: the credentials inside URLs, and any value a
// Secrets set was given (passwords, tokens, key seeds).
package redact

import (
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "***"

// URL hides the credentials of every URL in s, which may be a
// comma-separated list (a NATS server list) and need not parse: a user
// name stays and its password becomes Mask ("nats://alice:***@host"), a
// bare token becomes Mask ("nats://***@host").
func URL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = oneURL(p)
	}
	return strings.Join(parts, ",")
}

func oneURL(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + len("://")
	}
	rest := s[start:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	userinfo := Mask
	if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
		userinfo = rest[:colon+1] + Mask
	}
	return s[:start] + userinfo + rest[at:]
}

// urlCredentials finds the user info of URLs inside free text.
var urlCredentials = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^\s/"'<>]+)@`)

// Text hides the credentials of every URL inside free text (an error
// message, a log line), like URL does for one URL.
func Text(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return urlCredentials.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlCredentials.FindStringSubmatch(m)
		userinfo := Mask
		if colon := strings.IndexByte(sub[2], ':'); colon >= 0 {
			userinfo = sub[2][:colon+1] + Mask
		}
		return sub[1] + userinfo + "@"
	})
}

// Error returns err with its message passed through clean (e.g. URL, or a
// Secrets' String); errors.Is and errors.As still see err. Error(nil,
// ...) is nil.
func Error(err error, clean func(string) string) error {
	if err == nil {
		return nil
	}
	msg := clean(err.Error())
	if msg == err.Error() {
		return err
	}
	return &cleaned{msg: msg, err: err}
}

type cleaned struct {
	msg string
	err error
}

func (c *cleaned) Error() string { return c.msg }
func (c *cleaned) Unwrap() error { return c.err }
