package mq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/test/testenv"
)

const jsTestStream = "DBSYNC"

// newTestJetStream connects a JetStream publisher to srv (stream DBSYNC,
// subjects "app.*.*") and closes it at cleanup.
func newTestJetStream(t testing.TB, srv *testenv.NATS, mod func(*JetStreamOptions)) *JetStream {
	t.Helper()
	return newTestJetStreamLog(t, srv, mod, testLogger(t))
}

func newTestJetStreamLog(t testing.TB, srv *testenv.NATS, mod func(*JetStreamOptions), log logrus.FieldLogger) *JetStream {
	t.Helper()
	opts := JetStreamOptions{
		URL:      srv.URL(),
		Stream:   jsTestStream,
		Subjects: []string{"app.*.*"},
	}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := NewJetStream(ctx, opts, log)
	if err != nil {
		t.Fatalf("NewJetStream(%s): %v", opts.URL, err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// jsClient returns a JetStream API client on a new connection to srv,
// closed at cleanup.
func jsClient(t testing.TB, srv *testenv.NATS) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(srv.Conn(t))
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return js
}

func jsStreamInfo(t testing.TB, srv *testenv.NATS, stream string) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := jsClient(t, srv).Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return s.CachedInfo()
}

// jsPurge removes every message of the stream (its sequence numbers go on).
func jsPurge(t testing.TB, srv *testenv.NATS, stream string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := jsClient(t, srv).Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatalf("purge stream %s: %v", stream, err)
	}
}

// jsStored is one message as the stream holds it.
type jsStored struct {
	Data []byte
	ID   string // Nats-Msg-Id header
}

// jsReadSubject reads every message of subject from the stream, in stream
// order, with an ordered consumer.
func jsReadSubject(t testing.TB, srv *testenv.NATS, stream, subject string) []jsStored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := jsClient(t, srv).Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("stream %s info for %s: %v", stream, subject, err)
	}
	n := int(info.State.Subjects[subject])
	out := make([]jsStored, 0, n)
	if n == 0 {
		return out
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("ordered consumer on %s: %v", subject, err)
	}
	for len(out) < n {
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d messages of %s before the deadline", len(out), n, subject)
		}
		batch, err := cons.Fetch(min(n-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch from %s: %v", subject, err)
		}
		for m := range batch.Messages() {
			out = append(out, jsStored{Data: m.Data(), ID: m.Headers().Get(jetstream.MsgIDHeader)})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("fetch from %s: %v", subject, err)
		}
	}
	return out
}

// jsCheckSubject asserts that the stream holds exactly want on subject, in
// order, each with its message id.
func jsCheckSubject(t *testing.T, srv *testenv.NATS, subject string, want []Message) {
	t.Helper()
	got := jsReadSubject(t, srv, jsTestStream, subject)
	if len(got) != len(want) {
		t.Fatalf("subject %s: stored %d messages, want %d", subject, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Data, want[i].Data) || got[i].ID != want[i].ID {
			t.Fatalf("subject %s: message %d is %q %.80q, want %q %.80q", subject, i, got[i].ID, got[i].Data, want[i].ID, want[i].Data)
		}
	}
}

// msgsOn returns the messages of msgs with the given subject, in order.
func msgsOn(msgs []Message, subject string) []Message {
	var out []Message
	for _, m := range msgs {
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// jsWaitPendingZero asserts that no acknowledgement stays pending.
func jsWaitPendingZero(t *testing.T, j *JetStream, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := j.js.PublishAsyncPending()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledgements still pending after %v", n, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJetStreamCreatesStream(t *testing.T) {
	srv := testenv.StartNATS(t)
	mod := func(o *JetStreamOptions) {
		o.Stream = "CHANGES"
		o.Subjects = []string{"app.*.*", "other.>"}
		o.Storage = "memory"
		o.DuplicateWindow = 90 * time.Second
	}
	newTestJetStream(t, srv, mod)
	info := jsStreamInfo(t, srv, "CHANGES")
	cfg := info.Config
	if strings.Join(cfg.Subjects, ",") != "app.*.*,other.>" {
		t.Errorf("subjects %q, want [app.*.* other.>]", cfg.Subjects)
	}
	if cfg.Storage != jetstream.MemoryStorage {
		t.Errorf("storage %v, want memory", cfg.Storage)
	}
	if cfg.Replicas != 1 {
		t.Errorf("replicas %d, want 1", cfg.Replicas)
	}
	if cfg.Duplicates != 90*time.Second {
		t.Errorf("duplicate window %v, want 90s", cfg.Duplicates)
	}
	// Limits retention, and a full stream refuses new messages rather
	// than drop unread ones.
	if cfg.Retention != jetstream.LimitsPolicy || cfg.Discard != jetstream.DiscardNew {
		t.Errorf("retention %v discard %v, want limits/new", cfg.Retention, cfg.Discard)
	}

	// Defaults: file storage, 2m window, kept 7 days, no size bound.
	newTestJetStream(t, srv, func(o *JetStreamOptions) { o.Stream = "DEFAULTS"; o.Subjects = []string{"d.*.*"} })
	cfg = jsStreamInfo(t, srv, "DEFAULTS").Config
	if cfg.Storage != jetstream.FileStorage || cfg.Duplicates != DefaultJetStreamDuplicateWindow || cfg.Replicas != 1 {
		t.Errorf("default stream: storage %v, window %v, replicas %d", cfg.Storage, cfg.Duplicates, cfg.Replicas)
	}
	if cfg.MaxAge != DefaultJetStreamMaxAge || cfg.MaxBytes != -1 {
		t.Errorf("default stream: max age %v, max bytes %d; want 7 days and no bound", cfg.MaxAge, cfg.MaxBytes)
	}

	// The existing stream with the same settings is accepted unchanged.
	j := newTestJetStream(t, srv, mod)
	if err := j.Publish(context.Background(), makeMsgs("c", 3, []string{"app.shop.orders"}, 50)); err != nil {
		t.Fatalf("Publish to the created stream: %v", err)
	}
	if n := jsStreamInfo(t, srv, "CHANGES").State.Msgs; n != 3 {
		t.Fatalf("stream holds %d messages, want 3", n)
	}
}

func TestJetStreamExistingStreamCompatible(t *testing.T) {
	srv := testenv.StartNATS(t)
	ctx := context.Background()
	// Broader subjects and a longer duplicate window than configured are
	// fine and stay as they are.
	_, err := jsClient(t, srv).CreateStream(ctx, jetstream.StreamConfig{
		Name: jsTestStream, Subjects: []string{"app.>", "x.y"}, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	j := newTestJetStream(t, srv, func(o *JetStreamOptions) { o.Subjects = []string{"app.*.*"} })
	if err := j.Publish(ctx, makeMsgs("k", 5, []string{"app.a.b"}, 20)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	cfg := jsStreamInfo(t, srv, jsTestStream).Config
	if strings.Join(cfg.Subjects, ",") != "app.>,x.y" || cfg.Duplicates != 10*time.Minute {
		t.Fatalf("existing stream was modified: subjects %q, window %v", cfg.Subjects, cfg.Duplicates)
	}
}

func TestJetStreamExistingStreamConflicts(t *testing.T) {
	base := jetstream.StreamConfig{
		Subjects:   []string{"app.*.*"},
		Storage:    jetstream.FileStorage,
		Replicas:   1,
		Duplicates: 2 * time.Minute,
	}
	cases := []struct {
		name string
		mod  func(*jetstream.StreamConfig)
		opts func(*JetStreamOptions)
		want []string
	}{
		{"storage", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }, nil,
			[]string{`stream "DBSYNC": storage is memory, config says file (JetStream.Storage); change one, or use another JetStream.Stream`}},
		{"subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{"app.*"} }, nil,
			[]string{`stream "DBSYNC": subjects are ["app.*"], config says ["app.*.*"] (the subjects ProName gives)`, `["app.*.*"] are not captured`}},
		{"subjects-partly", func(c *jetstream.StreamConfig) { c.Subjects = []string{"a.*"} },
			func(o *JetStreamOptions) { o.Subjects = []string{"a.*", "b.*"} },
			[]string{`["b.*"] are not captured`}},
		{"replicas", nil, func(o *JetStreamOptions) { o.Replicas = 3 },
			[]string{`stream "DBSYNC": replicas is 1, config says 3 (JetStream.Replicas)`}},
		{"duplicate-window", func(c *jetstream.StreamConfig) { c.Duplicates = 10 * time.Second }, nil,
			[]string{`stream "DBSYNC": duplicate window is 10s, config says 2m0s (JetStream.DuplicateWindow)`}},
		{"all-at-once", func(c *jetstream.StreamConfig) {
			c.Storage = jetstream.MemoryStorage
			c.Subjects = []string{"q.*.*"}
			c.Duplicates = time.Second
		}, nil, []string{"storage is memory", "subjects are", "duplicate window is 1s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.StartNATS(t)
			cfg := base
			cfg.Name = jsTestStream
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			ctx := context.Background()
			if _, err := jsClient(t, srv).CreateStream(ctx, cfg); err != nil {
				t.Fatalf("create stream: %v", err)
			}
			opts := JetStreamOptions{URL: srv.URL(), Stream: jsTestStream, Subjects: []string{"app.*.*"}}
			if tc.opts != nil {
				tc.opts(&opts)
			}
			j, err := NewJetStream(ctx, opts, testLogger(t))
			if err == nil {
				_ = j.Close()
				t.Fatalf("NewJetStream against a conflicting stream succeeded")
			}
			t.Logf("conflict: %v", err)
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			// The stream was not touched.
			got := jsStreamInfo(t, srv, jsTestStream).Config
			if strings.Join(got.Subjects, ",") != strings.Join(cfg.Subjects, ",") ||
				got.Storage != cfg.Storage || got.Duplicates != cfg.Duplicates {
				t.Fatalf("stream changed by a failed NewJetStream: %+v", got)
			}
		})
	}
}

func TestSubjectCovers(t *testing.T) {
	cases := []struct {
		pattern, sub string
		want         bool
	}{
		{"*.*", "*.*", true},
		{"*.*", "a.b", true},
		{"*.*", "a.b.c", false},
		{"*.*", "a", false},
		{">", "*.*", true},
		{">", "a", true},
		{"app.>", "app.*.*", true},
		{"app.>", "app", false},
		{"app.*.*", "app.>", false},
		{"app.*.*", "*.*.*", false},
		{"a.*", "a.>", false},
		{"a.b", "a.b", true},
		{"a.b", "a.*", false},
		{"a.*", "a.b", true},
	}
	for _, c := range cases {
		if got := subjectCovers(c.pattern, c.sub); got != c.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", c.pattern, c.sub, got, c.want)
		}
	}
}

func TestSubjectsCollide(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"*.*", "$JS.>", true},
		{"*", "$JS.>", false},
		{">", "$JS.>", true},
		{"app.*.*", "$JS.>", false},
		{"*.orders", "$JS.>", true},
		{"$JS.API.x", "$JS.>", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b.c", false},
	}
	for _, c := range cases {
		if got := subjectsCollide(c.a, c.b); got != c.want {
			t.Errorf("subjectsCollide(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestJetStreamPublishInOrderAcrossSubjects(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	subjects := []string{"app.shop.orders", "app.shop.users", "app.inventory.items"}
	msgs := makeMsgs("order", 10000, subjects, 300)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := j.Publish(ctx, msgs); err != nil {
		t.Fatalf("Publish of %d messages: %v", len(msgs), err)
	}
	if n := j.js.PublishAsyncPending(); n != 0 {
		t.Fatalf("%d acknowledgements pending after a successful Publish", n)
	}
	if n := jsStreamInfo(t, srv, jsTestStream).State.Msgs; n != uint64(len(msgs)) {
		t.Fatalf("stream holds %d messages, want %d", n, len(msgs))
	}
	for _, subj := range subjects {
		want := msgsOn(msgs, subj)
		if len(want) < 3333 {
			t.Fatalf("test setup: %d messages for %s", len(want), subj)
		}
		jsCheckSubject(t, srv, subj, want)
	}

	// A second batch appends after the first, still in order.
	more := makeMsgs("more", 300, subjects, 100)
	if err := j.Publish(ctx, more); err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	all := append(append([]Message(nil), msgs...), more...)
	for _, subj := range subjects {
		jsCheckSubject(t, srv, subj, msgsOn(all, subj))
	}
}

func TestJetStreamMaxInflightOne(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, func(o *JetStreamOptions) { o.MaxInflight = 1 })
	msgs := makeMsgs("w", 500, []string{"app.win.a", "app.win.b"}, 100)
	if err := j.Publish(context.Background(), msgs); err != nil {
		t.Fatalf("Publish with MaxInflight=1: %v", err)
	}
	jsCheckSubject(t, srv, "app.win.a", msgsOn(msgs, "app.win.a"))
	jsCheckSubject(t, srv, "app.win.b", msgsOn(msgs, "app.win.b"))
}

func TestJetStreamReplayStoresOnce(t *testing.T) {
	srv := testenv.StartNATS(t)
	logger, hook := logtest.NewNullLogger()
	j := newTestJetStreamLog(t, srv, nil, logger)
	subjects := []string{"app.r.a", "app.r.b"}
	msgs := makeMsgs("replay", 1000, subjects, 200)
	ctx := context.Background()

	// A crash after part of the batch was stored, then the full replay.
	if err := j.Publish(ctx, msgs[:400]); err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	if err := j.Publish(ctx, msgs); err != nil {
		t.Fatalf("replay Publish: %v", err)
	}
	if n := jsStreamInfo(t, srv, jsTestStream).State.Msgs; n != 1000 {
		t.Fatalf("stream holds %d messages after a partial replay, want 1000", n)
	}
	// The same batch again: every message is a duplicate.
	hook.Reset()
	if err := j.Publish(ctx, msgs); err != nil {
		t.Fatalf("second replay Publish: %v", err)
	}
	if n := jsStreamInfo(t, srv, jsTestStream).State.Msgs; n != 1000 {
		t.Fatalf("stream holds %d messages after replaying the batch, want 1000", n)
	}
	dups := -1
	for _, e := range hook.AllEntries() {
		if d, ok := e.Data["duplicates"].(int); ok {
			dups = d
		}
	}
	if dups != len(msgs) {
		t.Fatalf("replay logged %d duplicate acknowledgements, want %d", dups, len(msgs))
	}
	for _, subj := range subjects {
		jsCheckSubject(t, srv, subj, msgsOn(msgs, subj))
	}

	// The broker marks the copy as a duplicate in its PubAck.
	pa, err := jsClient(t, srv).PublishMsg(ctx, &nats.Msg{Subject: msgs[0].Subject, Data: msgs[0].Data},
		jetstream.WithMsgID(msgs[0].ID))
	if err != nil || !pa.Duplicate {
		t.Fatalf("PubAck of a replayed id: %+v, %v; want Duplicate", pa, err)
	}
}

func TestJetStreamEmptyBatch(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	if err := j.Publish(context.Background(), nil); err != nil {
		t.Fatalf("Publish(nil) = %v, want nil", err)
	}
	if err := j.Publish(context.Background(), []Message{}); err != nil {
		t.Fatalf("Publish(empty) = %v, want nil", err)
	}
	if n := jsStreamInfo(t, srv, jsTestStream).State.Msgs; n != 0 {
		t.Fatalf("empty batches stored %d messages", n)
	}
	// Empty batches succeed without the broker.
	srv.Shutdown(t)
	if err := j.Publish(context.Background(), nil); err != nil {
		t.Fatalf("Publish(nil) with the broker down = %v, want nil", err)
	}
}

func TestJetStreamDefaults(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	o := j.opts
	if o.Storage != "file" || o.Replicas != 1 || o.DuplicateWindow != DefaultJetStreamDuplicateWindow ||
		o.MaxInflight != DefaultJetStreamMaxInflight || o.AckTimeout != DefaultJetStreamAckTimeout ||
		o.ConnectTimeout != DefaultJetStreamConnectTimeout {
		t.Fatalf("defaults not applied: %+v", o)
	}
}

func TestNewJetStreamInvalidOptions(t *testing.T) {
	_, err := NewJetStream(context.Background(), JetStreamOptions{
		Stream: "app.a.b", Subjects: []string{"ok.*", "bad..x", "x.>.y"}, Storage: "disk",
		Replicas: -1, MaxInflight: -1, AckTimeout: -time.Second,
	}, testLogger(t))
	if err == nil {
		t.Fatal("NewJetStream with invalid options succeeded")
	}
	for _, want := range []string{"URL is empty", `Stream "app.a.b"`, `"bad..x"`, `"x.>.y"`, `Storage "disk"`, "Replicas", "MaxInflight", "AckTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// JetStream refuses stream subjects overlapping its API ($JS.>).
	for _, subj := range []string{"*.*", ">", "*.orders", "$JS.x"} {
		_, err = NewJetStream(context.Background(), JetStreamOptions{URL: "nats://127.0.0.1:1", Stream: "S", Subjects: []string{subj}}, testLogger(t))
		if err == nil || !strings.Contains(err.Error(), "overlaps the server's reserved subjects") || !strings.Contains(err.Error(), "ProName") {
			t.Errorf("Subjects %q: %v, want a reserved-subjects error pointing at ProName", subj, err)
		}
	}
	_, err = NewJetStream(context.Background(), JetStreamOptions{URL: "nats://127.0.0.1:1"}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "Stream is empty") || !strings.Contains(err.Error(), "Subjects is empty") {
		t.Fatalf("missing Stream and Subjects: %v", err)
	}
}

func TestNewJetStreamUnreachable(t *testing.T) {
	url := "nats://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	start := time.Now()
	j, err := NewJetStream(context.Background(), JetStreamOptions{URL: url, Stream: "S", Subjects: []string{"app.*.*"}}, testLogger(t))
	took := time.Since(start)
	if err == nil {
		_ = j.Close()
		t.Fatalf("NewJetStream(%s) with nothing listening succeeded", url)
	}
	if took > 3*time.Second {
		t.Errorf("NewJetStream took %v to fail, want fast failure", took)
	}
	t.Logf("unreachable: %v", err)
	if !strings.Contains(err.Error(), url) || !errors.Is(err, ErrUnreachable) {
		t.Errorf("error %q does not name %s or is not ErrUnreachable", err, url)
	}
	if fix := failure.Fix(err); !strings.Contains(fix, "running and reachable") {
		t.Errorf("fix %q does not say to start the server", fix)
	}
}

func TestNewJetStreamNotEnabled(t *testing.T) {
	// A plain NATS server without JetStream.
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	start := time.Now()
	j, err := NewJetStream(context.Background(), JetStreamOptions{
		URL: srv.ClientURL(), Stream: "S", Subjects: []string{"app.*.*"}, ConnectTimeout: 2 * time.Second,
	}, testLogger(t))
	if err == nil {
		_ = j.Close()
		t.Fatal("NewJetStream against a server without JetStream succeeded")
	}
	t.Logf("jetstream disabled (%v): %v", time.Since(start), err)
	if !strings.Contains(failure.Fix(err), "enable JetStream") || !strings.Contains(err.Error(), srv.ClientURL()) || !errors.Is(err, ErrNoJetStream) {
		t.Fatalf("error %q (fix %q) does not say to enable JetStream at %s", err, failure.Fix(err), srv.ClientURL())
	}
}

func TestJetStreamRejectedMessages(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, func(o *JetStreamOptions) { o.Subjects = []string{"app.*.*"} })
	ctx := context.Background()
	big := make([]byte, 2<<20) // over the server's default 1 MB max_payload
	cases := []struct {
		name string
		msg  Message
		want string
		is   error
	}{
		{"not-captured", Message{Subject: "other.db.t", ID: "r-1", Data: []byte("x")}, "not one of the stream's subjects", ErrRejected},
		{"wildcard", Message{Subject: "app.*.t", ID: "r-2", Data: []byte("x")}, "wildcard", ErrRejected},
		{"whitespace", Message{Subject: "app.d b.t", ID: "r-3", Data: []byte("x")}, "whitespace", ErrRejected},
		{"no-id", Message{Subject: "app.db.t", Data: []byte("x")}, "no ID", ErrRejected},
		{"too-big", Message{Subject: "app.db.t", ID: "r-4", Data: big}, "max_payload", ErrTooLarge},
	}
	for _, tc := range cases {
		msgs := makeMsgs("ok-"+tc.name, 5, []string{"app.db.ok"}, 50)
		msgs[3] = tc.msg
		err := j.Publish(ctx, msgs)
		if err == nil {
			t.Fatalf("%s: Publish succeeded", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
		var perr *PublishError
		if !errors.As(err, &perr) || perr.Subject != tc.msg.Subject || perr.ID != tc.msg.ID {
			t.Fatalf("%s: error %v does not name %q/%q", tc.name, err, tc.msg.Subject, tc.msg.ID)
		}
		if !errors.Is(err, tc.is) || errors.Is(err, ErrConnectionLost) {
			t.Fatalf("%s: error %v does not wrap %v alone", tc.name, err, tc.is)
		}
		// Nothing after the refused message was stored. Publish returns
		// at the refusal, maybe before the three sent before it were
		// acknowledged: wait for them.
		got := jsReadSubject(t, srv, jsTestStream, "app.db.ok")
		for deadline := time.Now().Add(5 * time.Second); len(got) < 3 && time.Now().Before(deadline); got = jsReadSubject(t, srv, jsTestStream, "app.db.ok") {
			time.Sleep(20 * time.Millisecond)
		}
		if len(got) != 3 || got[2].ID != msgs[2].ID {
			t.Fatalf("%s: subject app.db.ok holds %d messages after the refused 4th, want the first 3", tc.name, len(got))
		}
		jsPurge(t, srv, jsTestStream)
		if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: error %q does not contain %q", tc.name, err, tc.want)
		}
	}
	// The connection stays usable.
	good := makeMsgs("g", 10, []string{"app.db.after"}, 50)
	if err := j.Publish(ctx, good); err != nil {
		t.Fatalf("Publish after rejected messages: %v", err)
	}
	jsCheckSubject(t, srv, "app.db.after", good)
}

func TestJetStreamContextDeadlineWhileAcksOutstanding(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	msgs := makeMsgs("c", 100000, []string{"app.ctx.a", "app.ctx.b"}, 300)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := j.Publish(ctx, msgs)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("Publish of %d messages within 5ms succeeded; the test needs a slower publish", len(msgs))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish error %v does not wrap context.DeadlineExceeded", err)
	}
	var perr *PublishError
	if !errors.As(err, &perr) || !strings.HasPrefix(perr.ID, "c-") {
		t.Fatalf("error %v does not name the first unacknowledged message", err)
	}
	if took > time.Second {
		t.Fatalf("Publish returned %v after its 5ms deadline", took)
	}
	t.Logf("publish with 5ms deadline failed after %v: %v", took, err)

	// The late acks of the abandoned batch are harmless: the next batch
	// waits for them, then is delivered in full after the abandoned prefix.
	next := makeMsgs("n", 100, []string{"app.ctx.a"}, 100)
	if err := j.Publish(context.Background(), next); err != nil {
		t.Fatalf("Publish after an abandoned one: %v", err)
	}
	jsWaitPendingZero(t, j, 30*time.Second)
	got := jsReadSubject(t, srv, jsTestStream, "app.ctx.a")
	if len(got) < len(next) {
		t.Fatalf("subject ctx.a has %d messages, want at least %d", len(got), len(next))
	}
	tail := got[len(got)-len(next):]
	for i, m := range next {
		if !bytes.Equal(tail[i].Data, m.Data) {
			t.Fatalf("subject ctx.a: message %d of the last batch is %.60q, want %.60q", i, tail[i].Data, m.Data)
		}
	}
	// What was stored of the abandoned batch is an in-order prefix.
	abandoned := msgsOn(msgs, "app.ctx.a")
	for i, g := range got[:len(got)-len(next)] {
		if g.ID != abandoned[i].ID {
			t.Fatalf("stored message %d of the abandoned batch is %q, want %q", i, g.ID, abandoned[i].ID)
		}
	}
}

func TestJetStreamContextAlreadyDone(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := j.Publish(ctx, makeMsgs("d", 10, []string{"app.done.t"}, 50))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled ctx = %v, want context.Canceled", err)
	}
	if n := jsStreamInfo(t, srv, jsTestStream).State.Msgs; n != 0 {
		t.Fatalf("Publish with a cancelled ctx stored %d messages", n)
	}
}

func TestJetStreamShutdownAndRestart(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	subj := []string{"app.lost.t"}
	first := makeMsgs("a", 500, subj, 300)
	if err := j.Publish(context.Background(), first); err != nil {
		t.Fatalf("Publish before shutdown: %v", err)
	}

	srv.Shutdown(t)

	// Publish fails with ErrConnectionLost within a bounded time; no ctx
	// deadline is needed to end it.
	lostBatch := makeMsgs("b", 2000, subj, 300)
	start := time.Now()
	err := j.Publish(context.Background(), lostBatch)
	took := time.Since(start)
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Publish to a shut-down broker: %v, want ErrConnectionLost", err)
	}
	var perr *PublishError
	if !errors.As(err, &perr) || perr.Subject != "app.lost.t" || !strings.HasPrefix(perr.ID, "b-") {
		t.Fatalf("error %v does not name a message of the batch", err)
	}
	if took > 3*time.Second {
		t.Fatalf("Publish took %v to notice the lost broker", took)
	}
	t.Logf("publish after shutdown failed after %v: %v", took, err)

	// While the broker is down Publish fails at once, naming the URL.
	time.Sleep(100 * time.Millisecond)
	start = time.Now()
	err = j.Publish(context.Background(), lostBatch[:1])
	took = time.Since(start)
	if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), srv.URL()) {
		t.Fatalf("Publish while the broker is down: %v, want ErrConnectionLost naming %s", err, srv.URL())
	}
	if took > 100*time.Millisecond {
		t.Fatalf("Publish while the broker is down took %v", took)
	}
	t.Logf("publish while down failed after %v: %v", took, err)

	srv.Restart(t)

	// The client reconnects in the background; Publish succeeds again.
	third := makeMsgs("c", 500, subj, 300)
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := j.Publish(context.Background(), third)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("Publish after restart: %v, want success or ErrConnectionLost", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Publish still failing 15s after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	jsWaitPendingZero(t, j, time.Second)
	// The store survived the restart: the first batch, then the third
	// (nothing of the failed batches: the server was down).
	jsCheckSubject(t, srv, "app.lost.t", append(append([]Message(nil), first...), third...))

	// The duplicate window survived too: replaying the first batch stores
	// nothing.
	if err := j.Publish(context.Background(), first); err != nil {
		t.Fatalf("replay after restart: %v", err)
	}
	if n := jsStreamInfo(t, srv, jsTestStream).State.Msgs; n != 1000 {
		t.Fatalf("stream holds %d messages after replaying the first batch, want 1000", n)
	}
}

func TestJetStreamConnectionLostDuringPublish(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, func(o *JetStreamOptions) { o.MaxInflight = 8 })
	msgs := makeMsgs("p", 200000, []string{"app.during.t"}, 300)
	errc := make(chan error, 1)
	go func() { errc <- j.Publish(context.Background(), msgs) }()
	// Let the publish get going, then kill the broker under it.
	js := jsClient(t, srv)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := js.Stream(context.Background(), jsTestStream)
		if err == nil && s.CachedInfo().State.Msgs >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publish did not store 100 messages within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	srv.Shutdown(t)
	start := time.Now()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish did not return within 10s of the broker shutdown")
	}
	t.Logf("publish interrupted by shutdown failed after %v: %v", time.Since(start), err)
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Publish interrupted by broker shutdown = %v, want ErrConnectionLost", err)
	}

	srv.Restart(t)
	// What the broker stored of the failed batch is an in-order prefix.
	stored := jsReadSubject(t, srv, jsTestStream, "app.during.t")
	if len(stored) == 0 || len(stored) >= len(msgs) {
		t.Fatalf("broker stored %d of %d messages of the interrupted batch, want a proper prefix", len(stored), len(msgs))
	}
	for i := range stored {
		if stored[i].ID != msgs[i].ID || !bytes.Equal(stored[i].Data, msgs[i].Data) {
			t.Fatalf("stored message %d is %q, want %q (not an in-order prefix)", i, stored[i].ID, msgs[i].ID)
		}
	}
	// Replaying the batch from its start stores only what was missing.
	replay := msgs[:len(stored)+1000]
	deadline = time.Now().Add(15 * time.Second)
	for {
		err := j.Publish(context.Background(), replay)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrConnectionLost) || time.Now().After(deadline) {
			t.Fatalf("replay after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	jsCheckSubject(t, srv, "app.during.t", replay)
}

func TestJetStreamShortDeadlineAgainstDeadBroker(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	srv.Shutdown(t)
	expiredDeadlineFails(t, j, "app.dead.t")
}

func TestJetStreamCloseTwiceAndPublishAfterClose(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	closeTwiceThenPublish(t, j, "app.closed.t")
}

func TestJetStreamCloseDuringPublish(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, func(o *JetStreamOptions) { o.MaxInflight = 1 })
	closeDuringPublish(t, j, "app.cd.t")
}

func TestJetStreamCloseLeavesNoGoroutines(t *testing.T) {
	srv := testenv.StartNATS(t)
	opts := JetStreamOptions{URL: srv.URL(), Stream: "LEAK", Subjects: []string{"app.*.*"}}
	// Create the stream first: the server runs goroutines per stream.
	j, err := NewJetStream(context.Background(), opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = j.Close()
	time.Sleep(200 * time.Millisecond) // let the server settle
	baseline := runtime.NumGoroutine()

	j, err = NewJetStream(context.Background(), opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	abandonThenClose(t, j, "app.leak.t", baseline)
}

// BenchmarkJetStreamPublish publishes b.N messages of about 300 bytes in
// batches of 1024 (MQBENCH_BATCH overrides the batch size) to an embedded
// NATS server's file-backed stream and reports msgs/s.
func BenchmarkJetStreamPublish(b *testing.B) {
	srv := testenv.StartNATS(b)
	j := newTestJetStream(b, srv, nil)
	batch := 1024
	if v, err := strconv.Atoi(os.Getenv("MQBENCH_BATCH")); err == nil {
		batch = v
	}
	subjects := []string{"app.bench.orders", "app.bench.users", "app.bench.items"}
	// Distinct ids per batch, so the stream's de-duplication does not drop
	// them.
	ctx := context.Background()
	b.SetBytes(300)
	msgs := makeMsgs("bench", batch, subjects, 300)
	b.ResetTimer()
	start := time.Now()
	for done, round := 0, 0; done < b.N; done, round = done+batch, round+1 {
		n := min(batch, b.N-done)
		for i := range msgs[:n] {
			msgs[i].ID = fmt.Sprintf("bench-%d-%d", round, i)
		}
		if err := j.Publish(ctx, msgs[:n]); err != nil {
			b.Fatalf("Publish: %v", err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
