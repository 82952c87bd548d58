package faults_test

import (
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/faults"
)

// brokers are the broker kinds every broker scenario runs against.
var brokers = []string{e2e.Stan, e2e.JetStream}

// brokerScenario runs one broker fault against each broker kind: fault
// runs while the producer streams under load and must leave the broker
// running; wantNoticed says the producer must have noticed the fault (lost
// its broker connection or restarted from its checkpoint).
func brokerScenario(t *testing.T, name, description string, wantNoticed bool, fault func(c *faults.Cluster)) {
	t.Parallel()
	for _, kind := range brokers {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c := suite.NewCluster(t, faults.Options{Name: name + "/" + kind, Description: description, Broker: kind})
			c.Start()
			fault(c)
			c.Run(2 * time.Second)
			t.Logf("the producer lost its broker connection %d times, restarted from its checkpoint %d times", c.BrokerConnectionsLost(), c.Recoveries())
			c.Expectf(!wantNoticed || c.BrokerConnectionsLost()+c.Recoveries() > 0, "the producer neither lost its broker connection nor restarted from its checkpoint: it did not notice the fault")
			c.Finish()
		})
	}
}

func TestBrokerKill(t *testing.T) {
	brokerScenario(t, "broker-kill", "the broker is killed with SIGKILL under load and restarted on the same store 2 s later", true,
		func(c *faults.Cluster) {
			c.Broker.Kill()
			c.Run(2 * time.Second)
			c.Broker.Start()
		})
}

func TestBrokerKillTwice(t *testing.T) {
	brokerScenario(t, "broker-kill-twice", "the broker is killed with SIGKILL, restarted, and killed again 1 s later while the producer replays", true,
		func(c *faults.Cluster) {
			c.Broker.Kill()
			c.Run(time.Second)
			c.Broker.Start()
			c.Run(time.Second)
			c.Broker.Kill()
			c.Run(time.Second)
			c.Broker.Start()
		})
}

func TestBrokerStop30s(t *testing.T) {
	brokerScenario(t, "broker-stop-30s", "the broker is shut down with SIGTERM under load, stays down 30 s while the load goes on, then starts again", true,
		func(c *faults.Cluster) {
			c.Broker.Stop()
			c.Run(30 * time.Second)
			c.Broker.Start()
		})
}

func TestBrokerFreeze(t *testing.T) {
	brokerScenario(t, "broker-freeze-10s", "the broker is frozen with SIGSTOP for 10 s under load (sockets open, no answers), then resumed with SIGCONT", false,
		func(c *faults.Cluster) {
			c.Broker.Freeze()
			c.Run(10 * time.Second)
			c.Broker.Thaw()
		})
}
