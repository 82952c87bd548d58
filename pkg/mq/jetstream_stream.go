package mq

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/redact"
)

// streamConfig is the configuration of a stream NewJetStream creates.
func (j *JetStream) streamConfig() jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if j.opts.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	maxBytes := j.opts.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1 // no bound
	}
	return jetstream.StreamConfig{
		Name:        j.opts.Stream,
		Description: "dbsync row changes",
		Subjects:    j.opts.Subjects,
		Retention:   jetstream.LimitsPolicy,
		// A full stream refuses new changes (the producer waits and
		// retries) instead of dropping old ones not yet read.
		Discard:    jetstream.DiscardNew,
		MaxAge:     j.opts.MaxAge,
		MaxBytes:   maxBytes,
		Storage:    storage,
		Replicas:   j.opts.Replicas,
		Duplicates: j.opts.DuplicateWindow,
	}
}

// ensureStream creates the stream or checks the existing one.
func (j *JetStream) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, j.opts.ConnectTimeout)
	defer cancel()
	st, err := j.js.Stream(ctx, j.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cfg := j.streamConfig()
		st, err = j.js.CreateStream(ctx, cfg)
		if err == nil {
			j.log.WithFields(logrus.Fields{
				"subjects": cfg.Subjects, "storage": j.opts.Storage, "replicas": cfg.Replicas,
				"duplicate_window": cfg.Duplicates.String(),
			}).Info("mq: created JetStream stream")
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return j.streamError("create", err)
		}
		// Created concurrently by someone else: check theirs.
		st, err = j.js.Stream(ctx, j.opts.Stream)
	}
	if err != nil {
		return j.streamError("look up", err)
	}
	if err := streamConflicts(j.opts, st.CachedInfo().Config); err != nil {
		return err
	}
	if r := st.CachedInfo().Config.Retention; r != jetstream.LimitsPolicy {
		j.log.WithField("retention", r.String()).Warn("mq: stream does not use limits retention; messages may be removed once consumed")
	}
	if warning := RetentionWarning(st.CachedInfo()); warning != "" {
		j.log.WithField("stream", j.opts.Stream).Warn("mq: " + warning)
	}
	j.maxMsgSize.Store(int64(st.CachedInfo().Config.MaxMsgSize))
	j.log.WithField("messages", st.CachedInfo().State.Msgs).Info("mq: using existing JetStream stream")
	return nil
}

// streamError names the stream operation that failed; a server without
// JetStream for the account is ErrNoJetStream.
func (j *JetStream) streamError(op string, err error) error {
	err = fmt.Errorf("mq: %s JetStream stream %q at %s: %w", op, j.opts.Stream, redact.URL(j.opts.URL), err)
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		return failure.WithFix(mark(ErrNoJetStream, err), "enable JetStream on the NATS server (nats-server -js, or a jetstream block in its config)")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return failure.WithFix(err, "the JetStream API did not answer: check that JetStream is enabled and healthy on the server")
	}
	return err
}

// streamConflicts reports every setting of an existing stream (cfg) that
// conflicts with opts, each naming both values and the fix; nil when the
// stream can be used as it is.
func streamConflicts(opts JetStreamOptions, cfg jetstream.StreamConfig) error {
	name := opts.Stream
	var errs []error
	conflict := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("mq: stream %q: "+format, append([]any{name}, args...)...))
	}
	var missing []string
	for _, want := range opts.Subjects {
		covered := false
		for _, have := range cfg.Subjects {
			if subjectCovers(have, want) {
				covered = true
				break
			}
		}
		if !covered {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		conflict("subjects are %q, config says %q (the subjects ProName gives), and %q are not captured; add them to the stream (e.g. nats stream edit %s --subjects ...), or use another JetStream.Stream",
			cfg.Subjects, opts.Subjects, missing, name)
	}
	haveStorage := "file"
	if cfg.Storage == jetstream.MemoryStorage {
		haveStorage = "memory"
	}
	if haveStorage != opts.Storage {
		conflict("storage is %s, config says %s (JetStream.Storage); change one, or use another JetStream.Stream",
			haveStorage, opts.Storage)
	}
	if have := max(cfg.Replicas, 1); have != opts.Replicas {
		conflict("replicas is %d, config says %d (JetStream.Replicas); change one (nats stream edit %s --replicas %d), or use another JetStream.Stream",
			have, opts.Replicas, name, opts.Replicas)
	}
	if cfg.Duplicates < opts.DuplicateWindow {
		conflict("duplicate window is %v, config says %v (JetStream.DuplicateWindow); a replay after a longer outage would be stored twice: raise the stream's (nats stream edit %s --dupe-window %v) or lower JetStream.DuplicateWindow",
			cfg.Duplicates, opts.DuplicateWindow, name, opts.DuplicateWindow)
	}
	if cfg.Sealed {
		conflict("is sealed and accepts no messages; use another JetStream.Stream")
	}
	if cfg.NoAck {
		conflict("does not acknowledge messages (no_ack), so delivery cannot be confirmed; use another JetStream.Stream")
	}
	return errors.Join(errs...)
}

// StreamReport is what InspectJetStream found.
type StreamReport struct {
	// Exists is false when the stream does not exist yet (NewJetStream
	// creates it).
	Exists bool
	// Messages is how many messages the stream holds.
	Messages uint64
	// Retention is RetentionWarning's verdict on the stream: "" when it is
	// bounded and not near its limit.
	Retention string
	// Unreadable is set when the account may use JetStream but the
	// stream's information could not be read (a permission, a timeout):
	// the stream was not checked.
	Unreadable error
}

// InspectJetStream checks, creating and changing nothing, what NewJetStream
// would: that the NATS server at opts.URL answers, that the account has
// JetStream, and that opts.Stream, when it exists, has settings
// NewJetStream accepts. It fails with an error wrapping ErrUnreachable when
// the server cannot be reached, one wrapping ErrNoJetStream when JetStream
// is not enabled for the account, and the conflicts NewJetStream would
// report for an existing stream.
func InspectJetStream(ctx context.Context, opts JetStreamOptions) (StreamReport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return StreamReport{}, err
	}
	url := redact.URL(opts.URL)
	security, err := SecurityOptions(opts.Auth, opts.TLS)
	if err != nil {
		return StreamReport{}, failure.Permanent(fmt.Errorf("mq: connect to NATS at %s: %w", url, err))
	}
	nc, err := nats.Connect(opts.URL, append([]nats.Option{nats.Name("dbsync-doctor"), nats.Timeout(opts.ConnectTimeout), nats.NoReconnect()}, security...)...)
	if err != nil {
		err = redact.Error(err, redact.Text) // a URL in it may carry credentials
		if isAuthFailure(err) {
			return StreamReport{}, failure.WithFix(AuthError(fmt.Errorf("cannot connect to NATS at %s: %w", url, err)),
				"check the credentials: the NATS server refused them (a wrong user, password, token, nkey or credentials file)")
		}
		return StreamReport{}, mark(ErrUnreachable, fmt.Errorf("cannot connect to NATS at %s: %w", url, err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return StreamReport{}, mark(ErrNoJetStream, fmt.Errorf("NATS at %s: %w", url, err))
	}
	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		return StreamReport{}, mark(ErrNoJetStream, fmt.Errorf("NATS at %s has no JetStream for this account: %w", url, err))
	}
	st, err := js.Stream(ctx, opts.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return StreamReport{}, nil
	case err != nil:
		return StreamReport{Unreadable: fmt.Errorf("NATS at %s: cannot read stream %s: %w", url, opts.Stream, err)}, nil
	}
	info := st.CachedInfo()
	report := StreamReport{Exists: true, Messages: info.State.Msgs, Retention: RetentionWarning(info)}
	return report, streamConflicts(opts, info.Config)
}

// LastMessage implements HistoryReader: the stream's newest message. It
// also refreshes the stream's message size limit CheckSize uses.
func (j *JetStream) LastMessage(ctx context.Context) (StoredMessage, bool, error) {
	info, err := j.streamInfo(ctx)
	if err != nil {
		return StoredMessage{}, false, err
	}
	if info.State.Msgs == 0 {
		return StoredMessage{}, false, nil
	}
	st, err := j.js.Stream(ctx, j.opts.Stream)
	if err != nil {
		return StoredMessage{}, false, fmt.Errorf("mq: stream %q: %w", j.opts.Stream, err)
	}
	m, err := st.GetMsg(ctx, info.State.LastSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return StoredMessage{}, false, nil // deleted since
	}
	if err != nil {
		return StoredMessage{}, false, fmt.Errorf("mq: stream %q: last message (sequence %d): %w", j.opts.Stream, info.State.LastSeq, err)
	}
	return StoredMessage{Subject: m.Subject, ID: m.Header.Get(jetstream.MsgIDHeader), Data: m.Data, Sequence: m.Sequence}, true, nil
}

// MessageBefore implements HistoryScanner: the newest message the stream
// holds below sequence seq (found is false when there is none).
func (j *JetStream) MessageBefore(ctx context.Context, seq uint64) (StoredMessage, bool, error) {
	st, err := j.js.Stream(ctx, j.opts.Stream)
	if err != nil {
		return StoredMessage{}, false, fmt.Errorf("mq: stream %q: %w", j.opts.Stream, err)
	}
	for s := seq - 1; s > 0 && seq > 0; s-- {
		m, err := st.GetMsg(ctx, s)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted or aged out
		}
		if err != nil {
			return StoredMessage{}, false, fmt.Errorf("mq: stream %q: message %d: %w", j.opts.Stream, s, err)
		}
		return StoredMessage{Subject: m.Subject, ID: m.Header.Get(jetstream.MsgIDHeader), Data: m.Data, Sequence: m.Sequence}, true, nil
	}
	return StoredMessage{}, false, nil
}

// streamInfo reads the stream's state and configuration, and keeps its
// message size limit for CheckSize.
func (j *JetStream) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, j.opts.ConnectTimeout)
	defer cancel()
	st, err := j.js.Stream(ctx, j.opts.Stream)
	if err != nil {
		return nil, j.streamError("look up", err)
	}
	info := st.CachedInfo()
	j.maxMsgSize.Store(int64(info.Config.MaxMsgSize))
	return info, nil
}

// CheckSize implements SizeChecker: m fits when its data and the headers
// Send adds are within the server's max_payload and the stream's max
// message size (as last read from the stream: at connect, at the start of
// each chain and by LastMessage).
func (j *JetStream) CheckSize(m *Message) error {
	limit, what := j.maxPayload.Load(), "the NATS server's max_payload"
	if s := j.maxMsgSize.Load(); s > 0 && s < limit {
		limit, what = s, fmt.Sprintf("the max message size of stream %q", j.opts.Stream)
	}
	size := int64(len(m.Data) + jsHeaderSize(len(m.ID)))
	if size <= limit {
		return nil
	}
	return fmt.Errorf("%w: %d bytes with headers, over %s of %d bytes", ErrTooLarge, size, what, limit)
}

// jsHeaderSize is an upper bound of the header block Send adds to a
// message whose id has idLen bytes (the previous message's id is taken as
// at most 16 bytes longer).
func jsHeaderSize(idLen int) int {
	const status = len("NATS/1.0\r\n") + len("\r\n")
	msgID := len(jetstream.MsgIDHeader) + len(": \r\n") + idLen
	expect := max(len(jetstream.ExpectedLastMsgIDHeader)+len(": \r\n")+idLen+16,
		len(jetstream.ExpectedLastSeqHeader)+len(": \r\n")+20)
	return status + msgID + expect
}

// nearFull is the share of a stream's MaxBytes at which RetentionWarning
// speaks up.
const nearFull = 0.8

// RetentionWarning returns what is wrong with a stream's retention, or "":
// it keeps messages forever (no MaxAge, MaxBytes or MaxMsgs, so the volume
// fills), it drops old messages when full (DiscardOld with a size bound:
// a slow consumer loses changes), or it holds 80% or more of its MaxBytes
// (at the bound the broker refuses new changes and the producer waits).
func RetentionWarning(info *jetstream.StreamInfo) string {
	cfg, state := info.Config, info.State
	switch {
	case cfg.MaxAge == 0 && cfg.MaxBytes <= 0 && cfg.MaxMsgs <= 0:
		return fmt.Sprintf("stream %q keeps every message forever (no max age, bytes or messages): the broker's volume fills; "+
			"set a max age (nats stream edit %s --max-age 7d) or create it anew with JetStream.MaxAge", cfg.Name, cfg.Name)
	case cfg.Discard == jetstream.DiscardOld && (cfg.MaxBytes > 0 || cfg.MaxMsgs > 0):
		return fmt.Sprintf("stream %q drops its oldest messages when full (discard old): a consumer that falls behind loses changes; "+
			"set discard new (nats stream edit %s --discard new)", cfg.Name, cfg.Name)
	case cfg.MaxBytes > 0 && float64(state.Bytes) >= nearFull*float64(cfg.MaxBytes):
		return fmt.Sprintf("stream %q holds %d of its %d bytes (max bytes): when full the broker refuses new changes and the producer waits; "+
			"raise it (nats stream edit %s --max-bytes ...) or shorten the max age", cfg.Name, state.Bytes, cfg.MaxBytes, cfg.Name)
	}
	return ""
}
