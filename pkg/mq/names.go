package mq

import (
	"errors"
	"fmt"
	"strings"
)

// The names a NATS JetStream deployment of dbsync uses unless configured
// otherwise; the producer's config and the consumer SDK share them.
const (
	// DefaultJetStreamStream is the stream holding the changes.
	DefaultJetStreamStream = "DBSYNC"
	// DefaultJetStreamSubjectPrefix starts every subject,
	// "dbsync.<db>.<table>": a stream cannot capture subjects whose first
	// token is a wildcard.
	DefaultJetStreamSubjectPrefix = "dbsync."
)

// CheckStreamName returns nil when name can name a JetStream stream, else
// what is wrong with it.
func CheckStreamName(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n.*>/\\") {
		return errors.New("is not a valid stream name (no spaces, '.', '*', '>', slashes)")
	}
	return nil
}

// CheckStanClientID returns nil when id can be a NATS Streaming client id
// (ASCII letters, digits, '-' and '_'), else what is wrong with it.
func CheckStanClientID(id string) error {
	if id == "" {
		return errors.New("is empty")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("may only contain letters, digits, '-' and '_' (not %q)", c)
		}
	}
	return nil
}
