package producer_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/internal/e2e"
	"github.com/dbsync/dbsync/internal/testenv"
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
