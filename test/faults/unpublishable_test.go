package faults_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/faults"
)

// docsTable holds the rows of these scenarios that can be too large.
const docsTable = "fx.docs"

// insertDocs writes one row per id into fx.docs, each with a body of size
// bytes, each in its own transaction.
func insertDocs(t *testing.T, c *faults.Cluster, size int, ids ...int) {
	t.Helper()
	for _, id := range ids {
		c.DB.Exec(t, "INSERT INTO "+docsTable+" VALUES ("+strconv.Itoa(id)+", REPEAT('d', "+strconv.Itoa(size)+"))")
	}
}

// insertDocsTx writes rows first..last into fx.docs in one statement (one
// transaction, consecutive rows events), the row big with a body of
// bigSize bytes and the others small.
func insertDocsTx(t *testing.T, c *faults.Cluster, first, last, big, bigSize int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("INSERT INTO " + docsTable + " VALUES ")
	for id := first; id <= last; id++ {
		if id > first {
			b.WriteString(", ")
		}
		size := 100
		if id == big {
			size = bigSize
		}
		b.WriteString("(" + strconv.Itoa(id) + ", REPEAT('d', " + strconv.Itoa(size) + "))")
	}
	c.DB.Exec(t, b.String())
}

// refusedChange finds, in the producer's log, the change it refused to
// publish ("change FILE:POS:ROW (...) cannot be published").
func refusedChange(c *faults.Cluster) *envelope.Source {
	m := regexp.MustCompile(`change ([^ :]+):(\d+):(\d+) \(insert at binlog`).FindStringSubmatch(c.ProducerOutput())
	if m == nil {
		return nil
	}
	pos, _ := strconv.ParseUint(m[2], 10, 32)
	row, _ := strconv.Atoi(m[3])
	return &envelope.Source{File: m[1], Pos: uint32(pos), Row: row}
}

// deadLetters returns the markers on the producer's dead-letter subject.
func deadLetters(t *testing.T, c *faults.Cluster) []*envelope.Unpublishable {
	t.Helper()
	var out []*envelope.Unpublishable
	for _, data := range c.Broker.RawMessages("_dbsync.deadletter") {
		u, err := envelope.DecodeUnpublishable(data)
		if err != nil {
			t.Fatalf("dead-letter message %s: %v", data, err)
		}
		out = append(out, u)
	}
	return out
}

// TestTooLargeStop: with other tables writing, a row larger than the
// broker's max_payload (1 MiB) is found before it is sent; the default
// policy (stop) halts the producer naming the table, the change and the
// fix, and nothing behind the row is published on any subject.
func TestTooLargeStop(t *testing.T) {
	t.Parallel()
	for _, kind := range brokers {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c := suite.NewCluster(t, faults.Options{Name: "too-large-stop/" + kind, Broker: kind,
				Description: "a 1.5 MB row (over the broker's 1 MiB max_payload) is committed between small rows while two tables write; policy stop: the producer halts before sending it, naming table, change and fix; every subject holds an unbroken prefix and nothing after the row"})
			c.DB.Exec(t, "CREATE TABLE "+docsTable+" (id BIGINT PRIMARY KEY, body LONGTEXT NOT NULL)")
			c.Start()
			insertDocs(t, c, 100, 1, 2)
			insertDocs(t, c, 1500<<10, 3)
			insertDocs(t, c, 100, 4, 5)
			select {
			case <-c.Producer.Done():
			case <-time.After(60 * time.Second):
			}
			out := c.ProducerOutput()
			for _, want := range []string{"table fx.docs", "cannot be published", "max_payload", "Tables.OnUnpublishable", "nothing after it was published"} {
				c.Expectf(strings.Contains(out, want), "the producer's log lacks %q", want)
			}
			big := refusedChange(c)
			c.Expectf(big != nil, "the producer's log does not name the refused change")
			c.FinishHalted(1, faults.CheckOptions{ExtraTables: []string{docsTable}, NotAfter: big})
		})
	}
}

// TestTooLargeSkip: the same row with policy skip for fx.docs: a marker on
// the dead-letter subject names it, is counted, and everything else
// arrives.
func TestTooLargeSkip(t *testing.T) {
	t.Parallel()
	for _, kind := range brokers {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c := suite.NewCluster(t, faults.Options{Name: "too-large-skip/" + kind, Broker: kind,
				Description: "the same 1.5 MB row with Tables.OnUnpublishable {\"fx.docs\": \"skip\"}: a marker on the dead-letter subject names it, and every other row of every table arrives"})
			c.DB.Exec(t, "CREATE TABLE "+docsTable+" (id BIGINT PRIMARY KEY, body LONGTEXT NOT NULL)")
			c.Env.Set("Tables.OnUnpublishable", map[string]any{docsTable: "skip"})
			c.Start()
			insertDocs(t, c, 100, 1, 2)
			insertDocs(t, c, 1500<<10, 3)
			insertDocs(t, c, 100, 4, 5)
			c.Broker.WaitDistinct(docsTable, 4, 30*time.Second)
			marks := deadLetters(t, c)
			c.Expectf(len(marks) == 1 && marks[0].DB == "fx" && marks[0].Table == "docs" && strings.Contains(marks[0].Reason, "max_payload") &&
				marks[0].Subject == c.Broker.Prefix()+docsTable, "dead letter holds %d markers %+v, want one for fx.docs naming max_payload", len(marks), marks)
			c.FinishWith(faults.CheckOptions{ExtraTables: []string{docsTable}, Committed: map[string][]int64{docsTable: {1, 2, 4, 5}}})
		})
	}
}

// setStreamMaxMsgSize changes the producer's stream behind its back.
func setStreamMaxMsgSize(t *testing.T, c *faults.Cluster, size int32) {
	t.Helper()
	nc, err := nats.Connect(c.Broker.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, faults.JetStreamStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = size
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// refusedInBurst starts the cluster and an SDK consumer, lowers the
// stream's max message size to 64 KiB behind the producer's back (it read
// the old limit when its chain began), and writes rows 1-1001 of fx.docs in
// one transaction, row 501 of 200 KB: the producer sends them back to back
// with the async window full, the big row in the middle of it.
func refusedInBurst(t *testing.T, c *faults.Cluster) {
	t.Helper()
	// Full batches (1024 rows, or 1 s), not a batch whenever the reader
	// pauses: the big row goes out in the middle of one.
	c.Env.Set("Batch", map[string]any{"FlushWhenIdle": false, "MaxWait": "1s"})
	c.Start()
	c.StartConsumer(faults.ConsumerOptions{DedupFile: "dedup.db"})
	setStreamMaxMsgSize(t, c, 64<<10)
	insertDocsTx(t, c, 1, 1001, 501, 200<<10)
}

// TestJetStreamMaxMsgSizeStop: the stream's max message size is lowered
// behind the producer's back, so only the broker can refuse the one row
// that exceeds it, sent with 500 rows behind it in the async window while
// three tables write. The broker refuses the row and everything sent behind
// it; the producer stops (policy stop) and every subject holds an unbroken
// prefix in commit order. With the limit raised and the producer restarted, the
// stream holds every change once, in order, and an SDK consumer hands each
// over exactly once, in order.
func TestJetStreamMaxMsgSizeStop(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "stream-max-msg-size/jetstream", Broker: e2e.JetStream, Workload: faults.WorkloadOptions{Tables: 3},
		Description: "the stream's max message size is lowered to 64 KiB behind the producer's back; a 200 KB row in the middle of a 1001-row transaction goes out with 500 rows behind it in the async window while 3 tables write: the broker refuses it and all behind it, the producer stops (policy stop) with every subject an unbroken prefix; the limit is raised, the producer restarted: every change stored once, in order, and an SDK consumer hands each over exactly once"})
	c.DB.Exec(t, "CREATE TABLE "+docsTable+" (id BIGINT PRIMARY KEY, body LONGTEXT NOT NULL)")
	refusedInBurst(t, c)
	select {
	case <-c.Producer.Done():
	case <-time.After(90 * time.Second):
	}
	out := c.ProducerOutput()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "streaming failed") || strings.Contains(line, "cannot be published") {
			t.Log(line)
		}
	}
	// The broker refused first (the producer read the old limit), then the
	// next pass found the row before sending it and stopped.
	c.Expectf(strings.Contains(out, "raise the stream's max message size"), "the broker did not refuse the row (the producer's log has no broker refusal)")
	c.Expectf(strings.Contains(out, "max message size of stream") && strings.Contains(out, "table fx.docs"),
		"the producer's log does not name the stream's max message size and fx.docs")
	// Every subject holds an unbroken prefix, with nothing behind the row.
	halted := faults.CheckWith(t, c, append(c.Tables(), docsTable), faults.CheckOptions{Prefix: true, NotAfter: refusedChange(c)})
	t.Logf("while halted: %s", halted.Summary())
	c.Expectf(halted.OK, "while the producer was halted: %s", halted.Note)

	setStreamMaxMsgSize(t, c, -1)
	c.StartProducer()
	c.Run(2 * time.Second)
	c.FinishWith(faults.CheckOptions{ExtraTables: []string{docsTable}})
}

// TestJetStreamMaxMsgSizeSkip: the same load with policy skip for fx.docs:
// after the broker refused the row and what was sent behind it, the next
// pass finds the row before sending it and publishes a marker on the
// dead-letter subject instead; every other change arrives once, in order,
// and the SDK consumer hands each over exactly once.
func TestJetStreamMaxMsgSizeSkip(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{Name: "stream-max-msg-size-skip/jetstream", Broker: e2e.JetStream, Workload: faults.WorkloadOptions{Tables: 3},
		Description: "the same refused 200 KB row with Tables.OnUnpublishable {\"fx.docs\": \"skip\"}: the broker refuses it and all behind it, the next pass puts a marker naming it on the dead-letter subject; every other change arrives once, in order, and the SDK consumer hands each over exactly once"})
	c.DB.Exec(t, "CREATE TABLE "+docsTable+" (id BIGINT PRIMARY KEY, body LONGTEXT NOT NULL)")
	c.Env.Set("Tables.OnUnpublishable", map[string]any{docsTable: "skip"})
	refusedInBurst(t, c)
	c.Broker.WaitDistinct(docsTable, 1000, 90*time.Second)
	out := c.ProducerOutput()
	c.Expectf(strings.Contains(out, "raise the stream's max message size"), "the broker did not refuse the row (the producer's log has no broker refusal)")
	marks := deadLetters(t, c)
	c.Expectf(len(marks) == 1 && marks[0].Table == "docs" && strings.Contains(marks[0].Reason, "max message size"),
		"dead letter holds %d markers %+v, want one for the fx.docs row naming the stream's max message size", len(marks), marks)
	committed := make([]int64, 0, 1000)
	for id := int64(1); id <= 1001; id++ {
		if id != 501 {
			committed = append(committed, id)
		}
	}
	c.FinishWith(faults.CheckOptions{ExtraTables: []string{docsTable}, Committed: map[string][]int64{docsTable: committed}})
}
