package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/test/testenv"
)

// sinkBatch is how many messages one Publish call of the sink ceiling
// carries: the producer's default Batch.MaxRows.
const sinkBatch = 1024

// sampleSize is how many real envelopes takeSample keeps per workload.
const sampleSize = 2000

// sinkResult is one measurement of a broker's sink ceiling.
type sinkResult struct {
	Run              int
	Workload, Broker string
	// Streamed is set when all messages went in one Publish call (the
	// publisher's window of 4,096 unacknowledged messages kept full),
	// instead of batches of sinkBatch.
	Streamed bool
	Msgs     int
	Bytes    int64
	Elapsed  time.Duration
}

// MsgsPerSec is the measured rate.
func (r sinkResult) MsgsPerSec() float64 { return perSecond(r.Msgs, r.Elapsed) }

// takeSample runs the producer on w's stretch of the binlog into a
// throwaway NATS Streaming server until it published sampleSize messages
// (or all of w's), and returns their data in order: the envelopes the sink
// ceiling publishes again. (With JetStream the envelopes' source.name is
// the ProName "dbsync." instead of the server address, a few bytes
// shorter.)
func takeSample(ctx context.Context, parent *benchTB, bin string, db *testenv.MariaDB, w *workload) ([][]byte, error) {
	tb := parent.scope("sample-" + w.Name)
	defer tb.close()
	br, err := startBroker(tb, BrokerStan)
	if err != nil {
		return nil, err
	}
	setup, err := newProducerSetup(tb, bin, db, br, []string{w.fullTable()}, false)
	if err != nil {
		return nil, err
	}
	if err := setup.setCheckpoint(ctx, w.Start); err != nil {
		return nil, err
	}
	p, err := setup.start(tb)
	if err != nil {
		return nil, err
	}
	want := min(sampleSize, w.Rows)
	subject := br.subject(w.fullTable())
	if _, err := waitCount(ctx, br, p, subject, want, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("sample of %s: %w", w.Name, err)
	}
	if err := p.stop(); err != nil {
		return nil, fmt.Errorf("sample of %s: %w", w.Name, err)
	}
	return readStan(br.stan.Conn(tb, ""), subject, want)
}

// readStan reads the first n messages of a NATS Streaming channel.
func readStan(sc stan.Conn, subject string, n int) ([][]byte, error) {
	var (
		mu   sync.Mutex
		out  = make([][]byte, 0, n)
		done = make(chan struct{})
	)
	sub, err := sc.Subscribe(subject, func(m *stan.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if len(out) < n {
			out = append(out, append([]byte(nil), m.Data...))
			if len(out) == n {
				close(done)
			}
		}
	}, stan.StartAtSequence(1), stan.MaxInflight(4096))
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	if len(out) < n {
		return nil, fmt.Errorf("read %s: got %d of %d messages within 30s", subject, len(out), n)
	}
	return out, nil
}

// sinkMessages builds n messages for subject cycling through sample, each
// with a unique id of the length of a real one ("mysql-bin.000001:1234567:0"
// style), so that JetStream's de-duplication stores every one.
func sinkMessages(subject string, sample [][]byte, n int) ([]mq.Message, int64) {
	msgs := make([]mq.Message, n)
	var bytes int64
	for i := range msgs {
		data := sample[i%len(sample)]
		msgs[i] = mq.Message{Subject: subject, ID: fmt.Sprintf("sink-bin.000001:%09d:%d", i/16, i%16), Data: data}
		bytes += int64(len(data))
	}
	return msgs, bytes
}

// measureSink publishes as many messages as w has rows, with the sizes of
// w's sample, through the project's asynchronous publisher (pkg/mq) to a
// fresh broker: in batches of sinkBatch, one Publish call after the other,
// each waiting for its acknowledgements; or, streamed, all in one Publish
// call, whose window of unacknowledged messages never drains in between.
// The clock runs from the first Publish until the last one returned (every
// message acknowledged). It fails when the broker then holds a different
// number of messages.
func measureSink(ctx context.Context, parent *benchTB, brokerName string, w *workload, streamed bool) (sinkResult, error) {
	s, err := startSink(ctx, parent, "sink", brokerName, w)
	if err != nil {
		return sinkResult{}, err
	}
	defer s.close()
	size := sinkBatch
	if streamed {
		size = len(s.msgs)
	}
	began := time.Now()
	if err := s.publish(ctx, size); err != nil {
		return sinkResult{}, err
	}
	elapsed := time.Since(began)
	if err := s.verify(ctx); err != nil {
		return sinkResult{}, err
	}
	return sinkResult{Workload: w.Name, Broker: brokerName, Streamed: streamed, Msgs: len(s.msgs), Bytes: s.bytes, Elapsed: elapsed}, nil
}

// sinkRun is a fresh broker with the project's publisher connected to it
// and the messages of a sink ceiling ready to publish.
type sinkRun struct {
	tb         *benchTB
	brokerName string
	workload   string
	br         *broker
	q          mq.MessageQueue
	subject    string
	msgs       []mq.Message
	bytes      int64
}

// startSink starts a fresh broker (in a scope named after what, w and the
// broker) and connects the publisher; it builds as many messages as w has
// rows from w's sample. close releases both.
func startSink(ctx context.Context, parent *benchTB, what, brokerName string, w *workload) (*sinkRun, error) {
	if len(w.Sample) == 0 {
		return nil, fmt.Errorf("sink ceiling of %s: no sample envelopes", w.Name)
	}
	tb := parent.scope(what + "-" + w.Name + "-" + brokerName)
	br, err := startSinkBroker(tb, brokerName)
	if err != nil {
		tb.close()
		return nil, err
	}
	q, err := br.publisher(ctx)
	if err != nil {
		tb.close()
		return nil, err
	}
	subject := br.subject(w.fullTable())
	msgs, bytes := sinkMessages(subject, w.Sample, w.Rows)
	return &sinkRun{tb: tb, brokerName: brokerName, workload: w.Name, br: br, q: q, subject: subject, msgs: msgs, bytes: bytes}, nil
}

// publish publishes every message, size per Publish call, each call
// returning once its messages are acknowledged.
func (s *sinkRun) publish(ctx context.Context, size int) error {
	for i := 0; i < len(s.msgs); i += size {
		batch := s.msgs[i:min(i+size, len(s.msgs))]
		if err := s.q.Publish(ctx, batch); err != nil {
			return fmt.Errorf("sink ceiling of %s on %s: publish messages %d..%d: %w", s.workload, s.brokerName, i, i+len(batch)-1, err)
		}
	}
	return nil
}

// verify fails unless the broker holds exactly the published messages.
func (s *sinkRun) verify(ctx context.Context) error {
	got, err := s.br.count(ctx, s.subject)
	if err != nil {
		return err
	}
	if got != len(s.msgs) {
		return fmt.Errorf("sink ceiling of %s on %s: broker holds %d messages, want %d", s.workload, s.brokerName, got, len(s.msgs))
	}
	return nil
}

// close disconnects the publisher and stops the broker.
func (s *sinkRun) close() {
	s.q.Close()
	s.tb.close()
}
