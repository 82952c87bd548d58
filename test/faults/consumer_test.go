package faults_test

import (
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/faults"
)

// TestConsumerBrokerKill kills the broker with SIGKILL while an SDK
// consumer hands changes over under load (an acknowledgement is almost
// always in flight), restarts it 2 s later, and measures how long after the
// broker is back the consumer hands over its next change: within 5 s, and
// in the end every committed change once, in commit order.
func TestConsumerBrokerKill(t *testing.T) {
	t.Parallel()
	for _, kind := range brokers {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c := suite.NewCluster(t, faults.Options{Name: "consumer-broker-kill/" + kind, Broker: kind,
				Description: "an SDK consumer (bolt dedup, 2 ms per change, so a backlog builds) consumes under load; the broker is killed with SIGKILL, restarted 2 s later; the consumer hands over its next change within 5 s of the broker being back"})
			c.Start()
			// The handler is slow, so a backlog waits in the broker when it
			// is killed: what the consumer hands over next does not wait
			// for the producer's own recovery.
			k := c.StartConsumer(faults.ConsumerOptions{DedupFile: "dedup.db", Delay: 2 * time.Millisecond})
			table := c.Tables()[0]
			deadline := time.Now().Add(30 * time.Second)
			for len(k.Handed(table)) < 100 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			c.Broker.Kill()
			c.Run(2 * time.Second)
			c.Broker.Start()
			back := time.Now()
			for _, tbl := range c.Tables() {
				resumed := k.FirstHandedAfter(tbl, back, 30*time.Second)
				t.Logf("%s %s: the consumer handed over its next change %v after the broker was back", kind, tbl, resumed)
				c.Expectf(resumed >= 0 && resumed <= 5*time.Second, "%s: the consumer handed over its next change %v after the broker was back, want within 5s", tbl, resumed)
			}
			c.Run(time.Second)
			c.Finish()
		})
	}
}
