package mq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/test/testenv"
)

var clientSeq atomic.Int64

// testLogger discards output unless -v is given.
func testLogger(t testing.TB) logrus.FieldLogger {
	l := logrus.New()
	if !testing.Verbose() {
		l.Out = io.Discard
	}
	l.SetLevel(logrus.DebugLevel)
	return l.WithField("test", t.Name())
}

// newTestStan connects a Stan to srv and closes it at cleanup.
func newTestStan(t testing.TB, srv *testenv.Stan, mod func(*StanOptions)) *Stan {
	t.Helper()
	opts := StanOptions{
		URL:       srv.URL(),
		ClusterID: srv.ClusterID,
		ClientID:  "mqtest-" + strconv.FormatInt(clientSeq.Add(1), 10),
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := NewStan(opts, testLogger(t))
	if err != nil {
		t.Fatalf("NewStan(%s): %v", opts.URL, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// makeMsgs returns n messages spread round-robin over subjects; the data of
// each names its subject and sequence number within that subject, padded to
// about size bytes. It is mqtest.Messages for the tests inside package mq,
// which cannot import mqtest (mqtest imports mq); keep the two alike.
func makeMsgs(prefix string, n int, subjects []string, size int) []Message {
	msgs := make([]Message, n)
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
		msgs[i] = Message{Subject: subj, ID: id, Data: []byte(data)}
	}
	return msgs
}

// wantChannel returns the data of msgs with the given subject, in order.
func wantChannel(msgs []Message, subject string) [][]byte {
	var out [][]byte
	for _, m := range msgs {
		if m.Subject == subject {
			out = append(out, m.Data)
		}
	}
	return out
}

// checkChannel asserts that the broker stored exactly want on channel, in
// order.
func checkChannel(t *testing.T, srv *testenv.Stan, channel string, want [][]byte) {
	t.Helper()
	got := srv.ReadChannel(t, channel)
	if len(got) != len(want) {
		t.Fatalf("channel %s: stored %d messages, want %d", channel, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("channel %s: message %d is %.80q, want %.80q", channel, i, got[i], want[i])
		}
	}
}

// checkWindowEmpty asserts that no window token is held once every
// acknowledgement arrived.
func checkWindowEmpty(t *testing.T, s *Stan) {
	t.Helper()
	s.mu.Lock()
	sess := s.sess
	s.mu.Unlock()
	if sess == nil {
		t.Fatal("no session")
	}
	if n := len(sess.sem); n != 0 {
		t.Fatalf("%d window tokens still held after a successful publish, want 0", n)
	}
}

func TestStanPublishInOrderAcrossSubjects(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, nil)
	subjects := []string{"shop.orders", "shop.users", "inventory.items"}
	msgs := makeMsgs("order", 10000, subjects, 300)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Publish(ctx, msgs); err != nil {
		t.Fatalf("Publish of %d messages: %v", len(msgs), err)
	}
	checkWindowEmpty(t, s)
	for _, subj := range subjects {
		want := wantChannel(msgs, subj)
		if len(want) < 3333 {
			t.Fatalf("test setup: %d messages for %s", len(want), subj)
		}
		checkChannel(t, srv, subj, want)
	}

	// A second batch appends after the first, still in order.
	more := makeMsgs("more", 300, subjects, 100)
	if err := s.Publish(ctx, more); err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	all := append(append([]Message(nil), msgs...), more...)
	for _, subj := range subjects {
		checkChannel(t, srv, subj, wantChannel(all, subj))
	}
}

func TestStanPublishEmptyBatch(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, nil)
	if err := s.Publish(context.Background(), nil); err != nil {
		t.Fatalf("Publish(nil) = %v, want nil", err)
	}
	if err := s.Publish(context.Background(), []Message{}); err != nil {
		t.Fatalf("Publish(empty) = %v, want nil", err)
	}
	// The connection is still usable afterwards.
	msgs := makeMsgs("e", 3, []string{"empty.t"}, 50)
	if err := s.Publish(context.Background(), msgs); err != nil {
		t.Fatalf("Publish after empty batches: %v", err)
	}
	checkChannel(t, srv, "empty.t", wantChannel(msgs, "empty.t"))
}

func TestStanMaxInflightTwo(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, func(o *StanOptions) { o.MaxInflight = 2 })
	s.mu.Lock()
	window := cap(s.sess.sem)
	s.mu.Unlock()
	if window != 2 {
		t.Fatalf("window size %d, want MaxInflight 2", window)
	}
	subjects := []string{"win.a", "win.b"}
	msgs := makeMsgs("w", 2000, subjects, 200)
	if err := s.Publish(context.Background(), msgs); err != nil {
		t.Fatalf("Publish with MaxInflight=2: %v", err)
	}
	checkWindowEmpty(t, s)
	for _, subj := range subjects {
		checkChannel(t, srv, subj, wantChannel(msgs, subj))
	}
}

func TestStanDefaults(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, nil)
	if s.opts.MaxInflight != DefaultStanMaxInflight || s.opts.AckTimeout != DefaultStanAckTimeout ||
		s.opts.ConnectTimeout != DefaultStanConnectTimeout {
		t.Fatalf("defaults not applied: %+v", s.opts)
	}
}

func TestNewStanInvalidOptions(t *testing.T) {
	_, err := NewStan(StanOptions{ClientID: "bad id!", MaxInflight: -1}, testLogger(t))
	if err == nil {
		t.Fatal("NewStan with invalid options succeeded")
	}
	for _, want := range []string{"URL", "ClusterID", `ClientID "bad id!"`, "MaxInflight"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestNewStanUnreachable(t *testing.T) {
	port := testenv.FreePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	start := time.Now()
	s, err := NewStan(StanOptions{URL: url, ClusterID: "nocluster", ClientID: "unreachable"}, testLogger(t))
	took := time.Since(start)
	if err == nil {
		_ = s.Close()
		t.Fatalf("NewStan(%s) with nothing listening succeeded", url)
	}
	if took > 3*time.Second {
		t.Errorf("NewStan took %v to fail, want fast failure", took)
	}
	t.Logf("unreachable: %v", err)
	for _, want := range []string{url, `"nocluster"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if fix := failure.Fix(err); !strings.Contains(fix, "running and reachable") || !errors.Is(err, ErrUnreachable) {
		t.Errorf("error %q: fix %q does not say to start the server, or it is not ErrUnreachable", err, fix)
	}
}

func TestNewStanWrongClusterID(t *testing.T) {
	srv := testenv.StartStan(t)
	_, err := NewStan(StanOptions{
		URL: srv.URL(), ClusterID: "not-" + srv.ClusterID, ClientID: "wrongcid",
		ConnectTimeout: 500 * time.Millisecond,
	}, testLogger(t))
	if err == nil {
		t.Fatal("NewStan with a wrong cluster id succeeded")
	}
	if !strings.Contains(failure.Fix(err), "cluster id") || !strings.Contains(err.Error(), srv.URL()) || !strings.Contains(err.Error(), "not-"+srv.ClusterID) {
		t.Fatalf("error %q (fix %q) does not point at the cluster id and URL", err, failure.Fix(err))
	}
	t.Logf("wrong cluster id: %v", err)
}

func TestStanRejectedMessage(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, nil)
	msgs := makeMsgs("r", 5, []string{"ok.subject"}, 50)
	// The streaming server refuses channel names with wildcards.
	msgs[3] = Message{Subject: "bad.*", ID: "r-bad", Data: []byte("x")}
	err := s.Publish(context.Background(), msgs)
	if err == nil {
		t.Fatal("Publish with an invalid channel name succeeded")
	}
	var perr *PublishError
	if !errors.As(err, &perr) {
		t.Fatalf("error %v (%T) is not a *PublishError", err, err)
	}
	if perr.Subject != "bad.*" || perr.ID != "r-bad" {
		t.Fatalf("PublishError names %q/%q, want bad.*/r-bad: %v", perr.Subject, perr.ID, err)
	}
	t.Logf("rejected: %v", err)
	if errors.Is(err, ErrConnectionLost) {
		t.Fatalf("a rejected message is reported as connection loss: %v", err)
	}
	// The connection stays usable.
	good := makeMsgs("g", 10, []string{"ok.after"}, 50)
	if err := s.Publish(context.Background(), good); err != nil {
		t.Fatalf("Publish after a rejected message: %v", err)
	}
	checkChannel(t, srv, "ok.after", wantChannel(good, "ok.after"))
}

func TestStanContextDeadlineWhileAcksOutstanding(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, nil)
	msgs := makeMsgs("c", 100000, []string{"ctx.a", "ctx.b"}, 300)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Publish(ctx, msgs)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("Publish of %d messages within 5ms succeeded; the test needs a slower publish", len(msgs))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish error %v does not wrap context.DeadlineExceeded", err)
	}
	if took > time.Second {
		t.Fatalf("Publish returned %v after its 5ms deadline", took)
	}
	t.Logf("publish with 5ms deadline failed after %v: %v", took, err)
	// The late acks of the abandoned batch are harmless: the window drains
	// and the next batch is delivered in full after the abandoned prefix.
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		held := len(s.sess.sem)
		s.mu.Unlock()
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d window tokens still held 30s after the abandoned publish", held)
		}
		time.Sleep(10 * time.Millisecond)
	}
	next := makeMsgs("n", 100, []string{"ctx.a"}, 100)
	if err := s.Publish(context.Background(), next); err != nil {
		t.Fatalf("Publish after an abandoned one: %v", err)
	}
	got := srv.ReadChannel(t, "ctx.a")
	want := wantChannel(next, "ctx.a")
	if len(got) < len(want) {
		t.Fatalf("channel ctx.a has %d messages, want at least %d", len(got), len(want))
	}
	tail := got[len(got)-len(want):]
	for i := range want {
		if !bytes.Equal(tail[i], want[i]) {
			t.Fatalf("channel ctx.a: message %d of the last batch is %.60q, want %.60q", i, tail[i], want[i])
		}
	}
}

func TestStanContextAlreadyDone(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Publish(ctx, makeMsgs("d", 10, []string{"done.t"}, 50))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled ctx = %v, want context.Canceled", err)
	}
	if got := srv.ReadChannel(t, "done.t"); len(got) != 0 {
		t.Fatalf("Publish with a cancelled ctx stored %d messages", len(got))
	}
}

func TestStanConnectionLostAndReconnect(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, func(o *StanOptions) { o.ConnectTimeout = 2 * time.Second })
	subj := []string{"lost.t"}
	first := makeMsgs("a", 500, subj, 300)
	if err := s.Publish(context.Background(), first); err != nil {
		t.Fatalf("Publish before shutdown: %v", err)
	}

	srv.Shutdown(t)

	// Publish fails with ErrConnectionLost within a bounded time. The
	// broker is gone, so no ctx deadline is needed to end it.
	lostBatch := makeMsgs("b", 2000, subj, 300)
	start := time.Now()
	err := s.Publish(context.Background(), lostBatch)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Publish to a shut-down broker succeeded")
	}
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Publish to a shut-down broker: %v, want ErrConnectionLost", err)
	}
	if took > 10*time.Second {
		t.Fatalf("Publish took %v to notice the lost broker", took)
	}
	t.Logf("publish after shutdown failed after %v: %v", took, err)

	// While the broker is down the next Publish tries to reconnect, fails
	// fast, and names the URL.
	start = time.Now()
	err = s.Publish(context.Background(), lostBatch[:1])
	took = time.Since(start)
	if !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), srv.URL()) {
		t.Fatalf("Publish while the broker is down: %v, want ErrConnectionLost naming %s", err, srv.URL())
	}
	if took > 5*time.Second {
		t.Fatalf("reconnect attempt took %v", took)
	}
	t.Logf("publish while down failed after %v: %v", took, err)

	// A ctx with a very short deadline against the down broker returns
	// promptly with the ctx error or the connection error.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	start = time.Now()
	err = s.Publish(ctx, lostBatch[:10])
	took = time.Since(start)
	cancel()
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrConnectionLost)) {
		t.Fatalf("Publish with a short deadline while the broker is down: %v", err)
	}
	if took > time.Second {
		t.Fatalf("Publish with a 20ms deadline took %v", took)
	}
	t.Logf("publish with short deadline failed after %v: %v", took, err)

	srv.Restart(t)

	// The next Publish reconnects with the same ClientID and delivers.
	third := makeMsgs("c", 500, subj, 300)
	if err := s.Publish(context.Background(), third); err != nil {
		t.Fatalf("Publish after restart (reconnect): %v", err)
	}
	checkWindowEmpty(t, s)
	got := srv.ReadChannel(t, "lost.t")
	// Stored: the first batch, any prefix of the failed batches, then the
	// third batch in full.
	if len(got) < len(first)+len(third) {
		t.Fatalf("channel has %d messages, want at least %d", len(got), len(first)+len(third))
	}
	for i, m := range first {
		if !bytes.Equal(got[i], m.Data) {
			t.Fatalf("message %d before shutdown is %.60q, want %.60q", i, got[i], m.Data)
		}
	}
	tail := got[len(got)-len(third):]
	for i, m := range third {
		if !bytes.Equal(tail[i], m.Data) {
			t.Fatalf("message %d after restart is %.60q, want %.60q", i, tail[i], m.Data)
		}
	}
}

func TestStanConnectionLostDuringPublish(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, func(o *StanOptions) { o.MaxInflight = 8 })
	msgs := makeMsgs("p", 200000, []string{"during.t"}, 300)
	errc := make(chan error, 1)
	go func() { errc <- s.Publish(context.Background(), msgs) }()
	// Let the publish get going, then kill the broker under it.
	deadline := time.Now().Add(10 * time.Second)
	for srv.ChannelCount(t, "during.t") < 100 {
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
	// What the broker stored of the failed batch is an in-order prefix;
	// replaying the batch appends it again in full.
	stored := srv.ReadChannel(t, "during.t")
	if len(stored) == 0 || len(stored) >= len(msgs) {
		t.Fatalf("broker stored %d of %d messages of the interrupted batch, want a proper prefix", len(stored), len(msgs))
	}
	for i := range stored {
		if !bytes.Equal(stored[i], msgs[i].Data) {
			t.Fatalf("stored message %d is %.60q, want %.60q (not an in-order prefix)", i, stored[i], msgs[i].Data)
		}
	}
	replay := msgs[:1000]
	if err := s.Publish(context.Background(), replay); err != nil {
		t.Fatalf("replay after restart: %v", err)
	}
	got := srv.ReadChannel(t, "during.t")
	if len(got) != len(stored)+len(replay) {
		t.Fatalf("after replay the channel has %d messages, want %d", len(got), len(stored)+len(replay))
	}
	for i, m := range replay {
		if !bytes.Equal(got[len(stored)+i], m.Data) {
			t.Fatalf("replayed message %d is %.60q, want %.60q", i, got[len(stored)+i], m.Data)
		}
	}
}

func TestStanShortDeadlineAgainstDeadBroker(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, nil)
	srv.Shutdown(t)
	expiredDeadlineFails(t, s, "dead.t")
}

func TestStanCloseTwiceAndPublishAfterClose(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, nil)
	closeTwiceThenPublish(t, s, "closed.t")
	// The client id is free again: a new connection with it succeeds.
	s2 := newTestStan(t, srv, func(o *StanOptions) { o.ClientID = s.opts.ClientID })
	if err := s2.Publish(context.Background(), makeMsgs("z", 1, []string{"closed.t"}, 10)); err != nil {
		t.Fatalf("Publish on a new connection with the same client id: %v", err)
	}
}

func TestStanCloseDuringPublish(t *testing.T) {
	srv := testenv.StartStan(t)
	s := newTestStan(t, srv, func(o *StanOptions) { o.MaxInflight = 1 })
	closeDuringPublish(t, s, "cd.t")
}

func TestStanCloseLeavesNoGoroutines(t *testing.T) {
	srv := testenv.StartStan(t)
	// Create the channel first: the server runs a goroutine per channel.
	if err := srv.Conn(t, "").Publish("leak.t", []byte("first")); err != nil {
		t.Fatalf("create channel: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // let the server settle
	baseline := runtime.NumGoroutine()

	s, err := NewStan(StanOptions{URL: srv.URL(), ClusterID: srv.ClusterID, ClientID: "leak"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	abandonThenClose(t, s, "leak.t", baseline)
}

// BenchmarkStanPublish publishes b.N messages of about 300 bytes in batches
// of 1024 (MQBENCH_BATCH overrides the batch size) to an embedded NATS
// Streaming server and reports msgs/s.
func BenchmarkStanPublish(b *testing.B) {
	srv := testenv.StartStan(b)
	s := newTestStan(b, srv, nil)
	batch := 1024
	if v, err := strconv.Atoi(os.Getenv("MQBENCH_BATCH")); err == nil {
		batch = v
	}
	subjects := []string{"bench.orders", "bench.users", "bench.items"}
	msgs := makeMsgs("bench", batch, subjects, 300)
	ctx := context.Background()
	b.SetBytes(int64(len(msgs[0].Data)))
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		if err := s.Publish(ctx, msgs[:n]); err != nil {
			b.Fatalf("Publish: %v", err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
