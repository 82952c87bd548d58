package bench

import (
	"context"
	"sync"
	"time"

	"github.com/dbsync/dbsync/test/testenv"
)

// togetherResult is one measurement of the source and sink ceilings run at
// the same time on the one machine.
type togetherResult struct {
	Run              int
	Workload, Broker string
	Rows             int
	// Elapsed runs until both finished; Source and Sink until each did.
	Elapsed, Source, Sink time.Duration
}

// RowsPerSec is the measured rate.
func (r togetherResult) RowsPerSec() float64 { return perSecond(r.Rows, r.Elapsed) }

// measureTogether runs the source ceiling (go-mysql alone reading and
// decoding w's stretch of the binlog) and the streamed sink ceiling (the
// publisher publishing as many messages as w has rows to a fresh broker)
// at the same time. Both stages then share the machine's CPUs as they do
// in the producer's pipeline, with nothing of the producer's own work
// (encoding, batching, hand-offs, checkpoints): the rate is the most any
// producer could reach end to end on this machine. The clock runs from the
// start of both until both finished (the source: its last event read);
// it fails as either measurement does, stopping the other.
func measureTogether(ctx context.Context, parent *benchTB, db *testenv.MariaDB, brokerName string, w *workload) (togetherResult, error) {
	s, err := startSink(ctx, parent, "together", brokerName, w)
	if err != nil {
		return togetherResult{}, err
	}
	defer s.close()
	// The first failure stops the other side too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg                sync.WaitGroup
		srcErr, sinkErr   error
		srcDone, sinkDone time.Time
		began             = time.Now()
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if srcDone, srcErr = readStretch(ctx, db, w); srcErr != nil {
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		if sinkErr = s.publish(ctx, len(s.msgs)); sinkErr != nil {
			cancel()
		}
		sinkDone = time.Now()
	}()
	wg.Wait()
	if srcErr != nil {
		return togetherResult{}, srcErr
	}
	if sinkErr != nil {
		return togetherResult{}, sinkErr
	}
	if err := s.verify(ctx); err != nil {
		return togetherResult{}, err
	}
	srcTook, sinkTook := srcDone.Sub(began), sinkDone.Sub(began)
	elapsed := max(srcTook, sinkTook)
	return togetherResult{Workload: w.Name, Broker: brokerName, Rows: w.Rows, Elapsed: elapsed, Source: srcTook, Sink: sinkTook}, nil
}
