package producer_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestConflictingStreamIsRefused: an existing stream whose settings do not
// match the configuration stops the producer with an error naming the
// setting, before anything is published.
func TestConflictingStreamIsRefused(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	js, err := jetstream.New(e.NATS.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "DBSYNC", Subjects: []string{"dbsync.*.*"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	p := e.Start()
	if code := p.Wait(30 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
	}
	out := strings.ToLower(p.Output())
	for _, want := range []string{"dbsync", "storage", "memory", "file", "jetstream.storage"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, p.Output())
		}
	}
}

// TestEmbeddedBroker: with MQName jetstream and no JetStream.URL the
// producer runs its own NATS server, says so, and consumers read from it
// like from any NATS server; its data survives a producer restart.
func TestEmbeddedBroker(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	port := testenv.FreePort(t)
	e.Set("JetStream.URL", "")
	e.Set("JetStream.Listen", "127.0.0.1:"+strconv.Itoa(port))
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	count := func() uint64 {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		s, err := js.Stream(context.Background(), "DBSYNC")
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	for round := 1; round <= 2; round++ {
		p := e.Start()
		e2e.WaitLog(t, p, "binlog stream started")
		if !strings.Contains(p.Output(), "EMBEDDED NATS server") || !strings.Contains(p.Output(), url) {
			t.Fatalf("the producer did not say it runs an embedded broker on %s:\n%s", url, p.Output())
		}
		e.DB.Exec(t, "INSERT INTO shop.t VALUES ("+strconv.Itoa(round)+")")
		deadline := time.Now().Add(30 * time.Second)
		for count() < uint64(round) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the embedded stream holds %d messages", round, count())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if code := p.Stop(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, p.Output())
		}
	}
}

// TestJetStreamReplayBeyondDuplicateWindowStoresNothingTwice: the
// checkpoint is set back by hand to before changes the stream already
// holds, and the producer restarts after the stream's duplicate window has
// passed (so Nats-Msg-Id no longer recognises the replay). The producer
// reads what the stream holds and publishes only what comes after it: each
// change is stored once, in order.
func TestJetStreamReplayBeyondDuplicateWindowStoresNothingTwice(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	e.Set("JetStream.DuplicateWindow", "1s")
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	from, err := e.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	p = e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	for i := 1; i <= 20; i++ {
		e.DB.Exec(t, "INSERT INTO shop.t VALUES ("+strconv.Itoa(i)+")")
	}
	e.WaitFor("shop.t", 20, 30*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	if code, out, errOut := e.Command("checkpoint", "set", from.File, strconv.Itoa(int(from.Pos))); code != 0 {
		t.Fatalf("checkpoint set: %d\n%s%s", code, out, errOut)
	}
	time.Sleep(1500 * time.Millisecond) // past the duplicate window
	p = e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	e.DB.Exec(t, "INSERT INTO shop.t VALUES (21)")
	e.WaitFor("shop.t", 21, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	envs := e.Read("shop.t")
	if len(envs) != 21 {
		t.Fatalf("the stream holds %d messages, want 21 (each change once)", len(envs))
	}
	if !strings.Contains(p.Output(), "the broker already holds changes after the checkpoint") {
		t.Error("the producer did not say it skipped what the broker holds")
	}
	for i, env := range envs {
		if string(env.After["id"]) != strconv.Itoa(i+1) {
			t.Fatalf("message %d is id %s, want %d", i, env.After["id"], i+1)
		}
	}
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
}

// TestJetStreamForeignMessageIsRefused: the producer's stream must hold
// its changes only. A message someone else stored on its subjects (not a
// dbsync envelope, or a crafted envelope claiming a binlog position the
// server has not reached) stops the producer with an error naming the
// stream and the way out, instead of publishing behind it or skipping
// changes.
func TestJetStreamForeignMessageIsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data func(real []byte) []byte
		want string
	}{
		{"not dbsync", func([]byte) []byte { return []byte(`{"hello":"world"}`) }, "holds a message dbsync did not write"},
		{"far-future coordinate", func(real []byte) []byte {
			return []byte(strings.ReplaceAll(string(real), "mysql-bin.000001", "mysql-bin.999999"))
		}, "beyond the server's current position"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
			establishCheckpoint(e)
			js, err := jetstream.New(e.NATS.Conn(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(context.Background(), "dbsync.shop.t", tc.data(e.RawMessages("shop.t")[0])); err != nil {
				t.Fatal(err)
			}
			p := e.Start()
			if code := p.Wait(30 * time.Second); code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, p.Output())
			}
			mustContain(t, p.Output(), tc.want, "JetStream.Stream")
		})
	}
}

// TestStreamAtMaxBytes: a stream that reaches JetStream.MaxBytes refuses
// new changes; the producer says so clearly and retries, the doctor warns
// that the stream is near its bound, and once the bound is raised every
// change arrives, in order, none lost.
func TestStreamAtMaxBytes(t *testing.T) {
	t.Parallel()
	e := e2e.NewEnvBroker(t, producerBin, e2e.JetStream)
	e.Set("JetStream.MaxBytes", 32<<10)
	e.DB.Exec(t, "CREATE DATABASE shop", "CREATE TABLE shop.docs (id INT PRIMARY KEY, body VARCHAR(2000))")
	p := e.Start()
	e2e.WaitLog(t, p, "binlog stream started")
	const rows = 60 // about 2 KB per envelope: twice the bound
	for i := 1; i <= rows; i++ {
		e.DB.Exec(t, "INSERT INTO shop.docs VALUES ("+strconv.Itoa(i)+", REPEAT('x', 1500))")
	}
	e2e.WaitLog(t, p, "stream or storage is full")
	_, doctorOut, _ := e.Command("doctor")
	if !strings.Contains(doctorOut, "WARN") || !strings.Contains(doctorOut, "max bytes") {
		t.Errorf("the doctor does not warn of the full stream:\n%s", doctorOut)
	}
	if !strings.Contains(p.Output(), "nats stream edit --max-bytes") {
		t.Errorf("the producer's log does not say what to do:\n%s", p.Output())
	}

	js, err := jetstream.New(e.NATS.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "DBSYNC")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes = 8 << 20
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.WaitFor("shop.docs", rows, 90*time.Second)
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	for i, env := range e.Read("shop.docs") {
		if id := e2e.IntField(t, env.After, "id"); id != int64(i+1) {
			t.Fatalf("message %d is row %d, want %d: a change was lost or reordered", i, id, i+1)
		}
	}
}
