package mq

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/test/testenv"
)

// setMaxMsgSize changes the stream's max message size behind the
// publisher's back (it read the old one at connect).
func setMaxMsgSize(t *testing.T, srv *testenv.NATS, size int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := jsClient(t, srv)
	s, err := js.Stream(ctx, jsTestStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = size
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("set the stream's max message size to %d: %v", size, err)
	}
}

// checkPrefix asserts that every subject holds exactly the first messages
// of its share of msgs[:n], in order, and nothing of msgs[n:].
func checkPrefix(t *testing.T, srv *testenv.NATS, subjects []string, msgs []Message, n int) {
	t.Helper()
	for _, subj := range subjects {
		jsCheckSubject(t, srv, subj, msgsOn(msgs[:n], subj))
	}
}

// TestJetStreamRefusesEverythingBehindARefusedMessage: the stream refuses
// one message in the middle of a large batch sent with the async window
// full (its max message size was lowered after the publisher read it, so
// only the broker can tell). Every message sent behind it, in that batch
// and in the next batch already sent, is refused by the broker too; the
// stream holds an unbroken prefix. After the limit is raised the rest goes
// out and each subject holds every message once, in order.
func TestJetStreamRefusesEverythingBehindARefusedMessage(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	subjects := []string{"app.shop.orders", "app.shop.items", "app.blog.docs"}
	msgs := makeMsgs("k", 6000, subjects, 300)
	const bad = 2000
	msgs[bad].Data = append([]byte(`{"big":"`), make([]byte, 3000)...)
	for i := 8; i < len(msgs[bad].Data); i++ {
		msgs[bad].Data[i] = 'x'
	}
	msgs[bad].Data = append(msgs[bad].Data, `"}`...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The publisher reads the limit when it starts a chain: start one, then
	// lower the limit.
	if err := j.Publish(ctx, msgs[:1]); err != nil {
		t.Fatal(err)
	}
	setMaxMsgSize(t, srv, 2048)

	// Two batches in flight at once, as the producer's pipeline sends them.
	first, err := j.Send(ctx, msgs[1:4000])
	if err != nil {
		t.Fatal(err)
	}
	second, err := j.Send(ctx, msgs[4000:])
	if err != nil {
		t.Fatal(err)
	}
	err = first.Wait(ctx)
	var perr *PublishError
	if !errors.As(err, &perr) || perr.ID != msgs[bad].ID || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("first batch: %v; want ErrTooLarge naming %s", err, msgs[bad].ID)
	}
	if err := second.Wait(ctx); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("second batch, sent behind the refused message: %v; want ErrChainBroken", err)
	}
	if n := jsStreamInfo(t, srv, jsTestStream).State.Msgs; n != bad {
		t.Fatalf("stream holds %d messages, want the %d before the refused one", n, bad)
	}
	checkPrefix(t, srv, subjects, msgs, bad)

	// Until the caller resumes, nothing more is stored: the producer's
	// pipeline may send once more before it learns of the failure.
	late, err := j.Send(ctx, msgs[bad+1:bad+11])
	if err == nil {
		err = late.Wait(ctx)
	}
	if !errors.Is(err, ErrChainBroken) {
		t.Fatalf("a Send after the failure, before Resume: %v; want ErrChainBroken", err)
	}
	checkPrefix(t, srv, subjects, msgs, bad)
	j.Resume()

	// The pre-check now knows the limit: nothing is sent.
	if err := j.Publish(ctx, msgs[bad:]); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "max message size") {
		t.Fatalf("publish with the limit known: %v; want ErrTooLarge naming the stream's max message size", err)
	}
	setMaxMsgSize(t, srv, -1)
	if _, _, err := j.LastMessage(ctx); err != nil { // re-reads the limit
		t.Fatal(err)
	}
	if err := j.Publish(ctx, msgs[bad:]); err != nil {
		t.Fatalf("publish after raising the limit: %v", err)
	}
	checkPrefix(t, srv, subjects, msgs, len(msgs))
}

// TestJetStreamChainAcrossBrokerRestart pins how the chain meets a broker
// restart: the server rebuilds the last message id only from messages
// inside the duplicate window, so after a quiet spell a message that
// expects the last id is refused; the publisher therefore starts every
// chain (after a failure, a reconnect, or its first message) with
// Nats-Expected-Last-Sequence, which the server keeps.
func TestJetStreamChainAcrossBrokerRestart(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, func(o *JetStreamOptions) { o.DuplicateWindow = time.Second })
	subj := []string{"app.r.t"}
	first := makeMsgs("a", 50, subj, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := j.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the duplicate window
	srv.Shutdown(t)
	srv.Restart(t)

	// What a chain by message id alone would meet.
	m := nats.NewMsg("app.r.t")
	m.Data = []byte("probe")
	m.Header.Set(jetstream.ExpectedLastMsgIDHeader, first[len(first)-1].ID)
	_, err := jsClient(t, srv).PublishMsg(ctx, m)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsErrCodeWrongLastMsgID {
		t.Fatalf("publish expecting the last id after a restart: %v; want the server's wrong-last-msg-id refusal", err)
	}

	second := makeMsgs("b", 50, subj, 100)
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := j.Publish(ctx, second)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrConnectionLost) || time.Now().After(deadline) {
			t.Fatalf("publish after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	jsCheckSubject(t, srv, "app.r.t", append(append([]Message(nil), first...), second...))
}

// TestJetStreamChainRefusesAForeignWriter: a message another client stores
// between two of the publisher's breaks the chain: the publisher's next
// message is refused (ErrChainBroken). A replay then starts a new chain;
// the messages the stream acknowledges as duplicates are remembered, so the
// replay after that goes past them and stores the rest once.
func TestJetStreamChainRefusesAForeignWriter(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, nil)
	subj := []string{"app.f.t"}
	msgs := makeMsgs("f", 12, subj, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := j.Publish(ctx, msgs[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := jsClient(t, srv).Publish(ctx, "app.f.t", []byte("foreign")); err != nil {
		t.Fatal(err)
	}
	if err := j.Publish(ctx, msgs[10:11]); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("publish after a foreign message: %v; want ErrChainBroken", err)
	}
	// A replay from msgs[5]: msgs[5..9] are duplicates, msgs[10] is refused
	// (the stream's newest is the foreign message, not msgs[9]).
	if err := j.Publish(ctx, msgs[5:]); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("replay: %v; want ErrChainBroken", err)
	}
	// The next replay skips what the stream acknowledged as duplicates.
	if err := j.Publish(ctx, msgs[5:]); err != nil {
		t.Fatalf("second replay: %v", err)
	}
	got := jsReadSubject(t, srv, jsTestStream, "app.f.t")
	var ids []string
	for _, g := range got {
		ids = append(ids, g.ID)
	}
	want := "f-0 f-1 f-2 f-3 f-4 f-5 f-6 f-7 f-8 f-9  f-10 f-11"
	if strings.Join(ids, " ") != want {
		t.Fatalf("stream holds %q, want %q", strings.Join(ids, " "), want)
	}
}
