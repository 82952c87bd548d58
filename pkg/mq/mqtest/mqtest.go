// Package mqtest holds the contract every mq.MessageQueue keeps, as a suite
// an implementation runs on itself (Run), and an in-memory queue (Recorder)
// for the tests of code that publishes.
//
// A new broker passes Run before anything else uses it; see the NATS
// Streaming and JetStream contract tests in pkg/mq for how a harness reads
// back what its broker stored.
package mqtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/mq"
)

// Broker is one broker under test, as the newQueue function given to Run
// returns it.
type Broker struct {
	// Queue publishes to the broker; the suite closes it.
	Queue mq.MessageQueue
	// Subject returns a valid subject for the table name, distinct for
	// distinct names, in "<prefix>.<db>.<table>" form (the subjects the
	// queue accepts).
	Subject func(name string) string
	// Stored returns the data of the messages the broker holds on subject,
	// oldest first.
	Stored func(t *testing.T, subject string) [][]byte
}

// Run checks the contract of mq.MessageQueue on fresh brokers from
// newQueue (one per check):
//   - Publish stores every message in order per subject and returns nil
//     only then; an empty batch is no error;
//   - with mq.AsyncPublisher, batches sent before earlier ones are
//     acknowledged are stored in order, and each Pending's Wait succeeds;
//   - a message with a wildcard subject fails the batch with an
//     *mq.PublishError naming it (not mq.ErrConnectionLost), what was
//     stored of the batch is stored in order, and the queue stays usable;
//     an mq.Resumer stores exactly the messages before the refused one and
//     nothing sent after the failure until Resume;
//   - a done ctx fails Publish with the ctx's error;
//   - Close is idempotent, and a Publish after it, or interrupted by it,
//     fails with mq.ErrClosed;
//   - with mq.Pinger and mq.Connector, a healthy broker answers and
//     reports connected.
func Run(t *testing.T, newQueue func(t *testing.T) Broker) {
	t.Helper()
	t.Run("PublishKeepsOrderPerSubject", func(t *testing.T) {
		b := newQueue(t)
		defer b.Queue.Close()
		subjects := []string{b.Subject("orders"), b.Subject("users"), b.Subject("items")}
		msgs := Messages("order", 3000, subjects, 200)
		if err := b.Queue.Publish(testCtx(t), msgs); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if err := b.Queue.Publish(testCtx(t), nil); err != nil {
			t.Fatalf("Publish of an empty batch: %v", err)
		}
		for _, s := range subjects {
			checkStored(t, b, s, msgs)
		}
	})
	t.Run("AsyncSendsKeepOrder", func(t *testing.T) {
		b := newQueue(t)
		defer b.Queue.Close()
		sender, ok := b.Queue.(mq.AsyncPublisher)
		if !ok {
			t.Skip("not an mq.AsyncPublisher")
		}
		subject := b.Subject("async")
		var all []mq.Message
		var pending []mq.Pending
		for i := range 5 {
			msgs := Messages(fmt.Sprintf("async%d", i), 400, []string{subject}, 100)
			all = append(all, msgs...)
			p, err := sender.Send(testCtx(t), msgs)
			if err != nil {
				t.Fatalf("Send %d: %v", i, err)
			}
			pending = append(pending, p)
		}
		for i, p := range pending {
			if err := p.Wait(testCtx(t)); err != nil {
				t.Fatalf("Wait %d: %v", i, err)
			}
		}
		checkStored(t, b, subject, all)
	})
	t.Run("RefusedMessageIsNamed", func(t *testing.T) {
		b := newQueue(t)
		defer b.Queue.Close()
		ok := b.Subject("ok")
		msgs := Messages("r", 5, []string{ok}, 50)
		bad := strings.TrimSuffix(b.Subject("bad"), "bad") + "*"
		msgs[3] = mq.Message{Subject: bad, ID: "r-bad", Data: []byte(`{"bad":true}`)}
		err := b.Queue.Publish(testCtx(t), msgs)
		var perr *mq.PublishError
		if !errors.As(err, &perr) || perr.Subject != bad || perr.ID != "r-bad" {
			t.Fatalf("Publish with subject %q: %v, want an *mq.PublishError naming it", bad, err)
		}
		if errors.Is(err, mq.ErrConnectionLost) {
			t.Fatalf("a refused message reads as a lost connection: %v", err)
		}
		// Any prefix of the batch may be stored (Publish failed), in order.
		var sentOK []mq.Message
		for _, m := range msgs {
			if m.Subject == ok {
				sentOK = append(sentOK, m)
			}
		}
		got := b.Stored(t, ok)
		r, isResumer := b.Queue.(mq.Resumer)
		if isResumer {
			// The 3 before the refused one were sent when Publish failed,
			// not necessarily stored yet: the broker stores them shortly.
			got = storedAtLeast(t, b, ok, 3)
		}
		if len(got) > len(sentOK) {
			t.Fatalf("%d messages stored on %s, the batch had %d", len(got), ok, len(sentOK))
		}
		for i := range got {
			if !bytes.Equal(got[i], sentOK[i].Data) {
				t.Fatalf("message %d stored on %s is %.80q, want %.80q", i, ok, got[i], sentOK[i].Data)
			}
		}
		if isResumer {
			// An ordered queue stores nothing behind a refused message, not
			// even what is sent after the failure, until Resume.
			if len(got) != 3 {
				t.Fatalf("%d messages stored on %s, want exactly the 3 before the refused one", len(got), ok)
			}
			if sender, isAsync := b.Queue.(mq.AsyncPublisher); isAsync {
				ordered := b.Subject("ordered")
				batch := Messages("o", 5, []string{ordered}, 50)
				batch[2] = mq.Message{Subject: bad, ID: "o-bad", Data: []byte(`{"bad":true}`)}
				p, err := sender.Send(testCtx(t), batch)
				if err == nil {
					err = p.Wait(testCtx(t))
				}
				if err == nil {
					t.Fatal("Send with a refused message succeeded")
				}
				late := Messages("late", 5, []string{ordered}, 50)
				if p, err = sender.Send(testCtx(t), late); err == nil {
					err = p.Wait(testCtx(t))
				}
				if stored := b.Stored(t, ordered); !errors.Is(err, mq.ErrChainBroken) || len(stored) != 2 {
					t.Fatalf("a Send after the failure, before Resume: %v, %d stored on %s; want mq.ErrChainBroken and the 2 before the refused one", err, len(stored), ordered)
				}
			}
			r.Resume()
		}
		after := Messages("after", 10, []string{b.Subject("after")}, 50)
		if err := b.Queue.Publish(testCtx(t), after); err != nil {
			t.Fatalf("Publish after a refused message: %v", err)
		}
		checkStored(t, b, b.Subject("after"), after)
	})
	t.Run("DoneContext", func(t *testing.T) {
		b := newQueue(t)
		defer b.Queue.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := b.Queue.Publish(ctx, Messages("x", 10, []string{b.Subject("done")}, 10)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Publish with a done ctx: %v, want context.Canceled", err)
		}
	})
	t.Run("Close", func(t *testing.T) {
		b := newQueue(t)
		subject := b.Subject("closing")
		msgs := Messages("cd", 50000, []string{subject}, 300)
		errc := make(chan error, 1)
		go func() { errc <- b.Queue.Publish(context.Background(), msgs) }()
		time.Sleep(20 * time.Millisecond)
		if err := b.Queue.Close(); err != nil {
			t.Fatalf("Close during Publish: %v", err)
		}
		select {
		case err := <-errc:
			// Nil only when every message was acknowledged before Close.
			if err != nil && !errors.Is(err, mq.ErrClosed) {
				t.Fatalf("Publish interrupted by Close = %v, want mq.ErrClosed", err)
			}
			if err == nil {
				checkStored(t, b, subject, msgs)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Publish did not return within 5s of Close")
		}
		if err := b.Queue.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := b.Queue.Publish(testCtx(t), msgs[:1]); !errors.Is(err, mq.ErrClosed) {
			t.Fatalf("Publish after Close = %v, want mq.ErrClosed", err)
		}
	})
	t.Run("Health", func(t *testing.T) {
		b := newQueue(t)
		defer b.Queue.Close()
		if p, ok := b.Queue.(mq.Pinger); ok {
			if err := p.Ping(testCtx(t)); err != nil {
				t.Fatalf("Ping of a healthy broker: %v", err)
			}
		}
		if c, ok := b.Queue.(mq.Connector); ok && !c.Connected() {
			t.Fatal("Connected() is false on a healthy broker")
		}
	})
}

// Messages returns n messages spread round-robin over subjects, with ids
// prefix-0, prefix-1, ...; the data of each names its subject and sequence
// number within that subject, padded to about size bytes.
func Messages(prefix string, n int, subjects []string, size int) []mq.Message {
	msgs := make([]mq.Message, n)
	seq := make([]int, len(subjects))
	for i := range msgs {
		k := i % len(subjects)
		subj := subjects[k]
		id := fmt.Sprintf("%s-%d", prefix, i)
		data := fmt.Sprintf(`{"subject":%q,"seq":%d,"id":%q,"pad":"`, subj, seq[k], id)
		if pad := size - len(data) - 2; pad > 0 {
			data += strings.Repeat("x", pad)
		}
		data += `"}`
		seq[k]++
		msgs[i] = mq.Message{Subject: subj, ID: id, Data: []byte(data)}
	}
	return msgs
}

// checkStored fails the test unless the broker holds exactly the data of
// msgs' messages on subject, in order.
func checkStored(t *testing.T, b Broker, subject string, msgs []mq.Message) {
	t.Helper()
	var want [][]byte
	for _, m := range msgs {
		if m.Subject == subject {
			want = append(want, m.Data)
		}
	}
	got := b.Stored(t, subject)
	if len(got) != len(want) {
		t.Fatalf("subject %s: %d messages stored, want %d", subject, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("subject %s: message %d is %.80q, want %.80q", subject, i, got[i], want[i])
		}
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// storedAtLeast polls b.Stored until subject holds at least n messages or
// 10s passed, and returns what it holds then.
func storedAtLeast(t *testing.T, b Broker, subject string, n int) [][]byte {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := b.Stored(t, subject)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}
