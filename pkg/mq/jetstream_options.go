package mq

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults applied by NewJetStream to zero fields of JetStreamOptions.
const (
	DefaultJetStreamStorage         = "file"
	DefaultJetStreamReplicas        = 1
	DefaultJetStreamDuplicateWindow = 2 * time.Minute
	DefaultJetStreamMaxAge          = 7 * 24 * time.Hour
	DefaultJetStreamMaxInflight     = 4096
	DefaultJetStreamAckTimeout      = 30 * time.Second
	DefaultJetStreamConnectTimeout  = 5 * time.Second
)

// Connection settings of the JetStream publisher. The client reconnects
// forever, every jsReconnectWait (plus nats' jitter); it pings the server
// every jsPingInterval and declares the connection broken after
// jsPingMaxOut unanswered pings, so a server that stops answering is noticed
// within about (jsPingMaxOut+1)*jsPingInterval. A dropped TCP connection is
// noticed at once.
const (
	jsReconnectWait = 250 * time.Millisecond
	jsPingInterval  = time.Second
	jsPingMaxOut    = 3
	// jsReconnectGrace is how long Publish waits for the reconnect callback
	// when nats already reports the connection as re-established.
	jsReconnectGrace = time.Second
	// jsSubjectCacheMax bounds the cache of checked message subjects (one
	// entry per table).
	jsSubjectCacheMax = 1 << 14
)

// JetStreamOptions configures a NATS JetStream publisher.
type JetStreamOptions struct {
	// URL of the NATS server, "nats://host:port". Required.
	URL string
	// Stream is the name of the stream that stores the messages, e.g.
	// "DBSYNC". Required. It is created when missing.
	Stream string
	// Subjects the stream must capture, e.g. ["*.*"] or ["app.*.*"].
	// Required. Publish refuses (ErrRejected) a message whose subject none
	// of them matches.
	Subjects []string
	// Storage of a created stream, "file" or "memory". Zero means
	// DefaultJetStreamStorage.
	Storage string
	// Replicas of a created stream. Zero means DefaultJetStreamReplicas.
	Replicas int
	// DuplicateWindow is how long the stream remembers message ids
	// (Nats-Msg-Id) to drop a replayed message. Zero means
	// DefaultJetStreamDuplicateWindow.
	DuplicateWindow time.Duration
	// MaxInflight bounds the number of published but not yet acknowledged
	// messages; Publish blocks (respecting its ctx) while the window is
	// full. Zero means DefaultJetStreamMaxInflight.
	MaxInflight int
	// AckTimeout is how long the broker may take to acknowledge one
	// message. Zero means DefaultJetStreamAckTimeout.
	AckTimeout time.Duration
	// ConnectTimeout bounds connecting and each stream request of
	// NewJetStream. Zero means DefaultJetStreamConnectTimeout.
	ConnectTimeout time.Duration
	// MaxAge is how long a created stream keeps a message. Zero means
	// DefaultJetStreamMaxAge.
	MaxAge time.Duration
	// MaxBytes bounds a created stream's size; zero means no bound but
	// MaxAge. A full stream refuses new messages (ErrStreamFull) rather
	// than drop old ones a consumer may not have read.
	MaxBytes int64
	// Auth is how to authenticate to the NATS server; the zero value sends
	// no credentials.
	Auth NATSAuth
	// TLS, when not nil, requires a TLS connection checked by it.
	TLS *tls.Config
}

// withDefaults returns o with zero fields set to their defaults, or an error
// naming every invalid field.
func (o JetStreamOptions) withDefaults() (JetStreamOptions, error) {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("mq: jetstream: "+format, args...))
	}
	if o.URL == "" {
		add("URL is empty; set it to the NATS server address, e.g. nats://127.0.0.1:4222")
	}
	if o.Stream == "" {
		add("Stream is empty; set it to the stream name, e.g. %s", DefaultJetStreamStream)
	} else if err := CheckStreamName(o.Stream); err != nil {
		add("Stream %q %v", o.Stream, err)
	}
	if len(o.Subjects) == 0 {
		add("Subjects is empty; set the subjects the stream must capture, e.g. [\"*.*\"]")
	}
	for _, s := range o.Subjects {
		if err := checkSubject(s, true); err != nil {
			add("Subjects: %q %v", s, err)
			continue
		}
		for _, ns := range jsReservedSubjects() {
			if subjectsCollide(s, ns) {
				add("Subjects: %q overlaps the server's reserved subjects %s, which a stream cannot capture; give the subjects a literal first token (the producer's subjects are ProName+\"<db>.<table>\": set ProName, e.g. \"app.\")", s, ns)
				break
			}
		}
	}
	switch o.Storage {
	case "", "file", "memory":
	default:
		add("Storage %q is invalid; use \"file\" or \"memory\"", o.Storage)
	}
	if o.Replicas < 0 {
		add("Replicas %d is negative; use 1-5 or 0 for the default %d", o.Replicas, DefaultJetStreamReplicas)
	}
	if o.DuplicateWindow < 0 {
		add("DuplicateWindow %v is negative; use a positive duration or 0 for the default %v", o.DuplicateWindow, DefaultJetStreamDuplicateWindow)
	}
	if o.MaxInflight < 0 {
		add("MaxInflight %d is negative; use a positive window or 0 for the default %d", o.MaxInflight, DefaultJetStreamMaxInflight)
	}
	if o.AckTimeout < 0 {
		add("AckTimeout %v is negative; use a positive duration or 0 for the default %v", o.AckTimeout, DefaultJetStreamAckTimeout)
	}
	if o.MaxAge < 0 {
		add("MaxAge %v is negative; use a positive duration or 0 for the default %v", o.MaxAge, DefaultJetStreamMaxAge)
	}
	if o.MaxBytes < 0 {
		add("MaxBytes %d is negative; use a size in bytes, or 0 for no bound but MaxAge", o.MaxBytes)
	}
	if err := o.Auth.check(); err != nil {
		add("%v", err)
	}
	if o.ConnectTimeout < 0 {
		add("ConnectTimeout %v is negative; use a positive duration or 0 for the default %v", o.ConnectTimeout, DefaultJetStreamConnectTimeout)
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	o.Subjects = append([]string(nil), o.Subjects...)
	if o.Storage == "" {
		o.Storage = DefaultJetStreamStorage
	}
	if o.Replicas == 0 {
		o.Replicas = DefaultJetStreamReplicas
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = DefaultJetStreamDuplicateWindow
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = DefaultJetStreamMaxInflight
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultJetStreamAckTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultJetStreamConnectTimeout
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultJetStreamMaxAge
	}
	return o, nil
}

// checkSubject reports why s is not a valid NATS subject: empty tokens,
// whitespace, or (unless wildcards) a '*' or '>' token. A '>' may only be
// the last token.
func checkSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("is empty")
	}
	if strings.ContainsAny(s, " \t\r\n\f\v\x00") {
		return errors.New("contains whitespace")
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return errors.New("has an empty token")
		case tok == "*" || tok == ">":
			if !wildcards {
				return fmt.Errorf("contains the wildcard %q", tok)
			}
			if tok == ">" && i != len(toks)-1 {
				return errors.New("has '>' before its last token")
			}
		}
	}
	return nil
}

// jsReservedSubjects returns the JetStream and system API subjects the
// server refuses as (acknowledged) stream subjects.
func jsReservedSubjects() []string {
	return []string{"$JS.>", "$JSC.>", "$NRG.>", "$SYS.>"}
}

// subjectsCollide reports whether some literal subject matches both
// patterns a and b.
func subjectsCollide(a, b string) bool {
	at := strings.Split(a, ".")
	bt := strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		x, y := at[i], bt[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != "*" && y != "*" && x != y {
			return false
		}
	}
	return len(at) == len(bt)
}

// subjectCovers reports whether every subject matched by sub is also
// matched by pattern (both may hold wildcards).
func subjectCovers(pattern, sub string) bool {
	p := strings.Split(pattern, ".")
	s := strings.Split(sub, ".")
	for i, tok := range p {
		if tok == ">" {
			return i < len(s)
		}
		if i >= len(s) || s[i] == ">" {
			return false
		}
		if tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(p) == len(s)
}
