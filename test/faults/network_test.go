package faults_test

import (
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/faults"
)

// netFault is one network fault applied to a proxy.
type netFault struct {
	name, what   string
	wantRecovery bool
	apply        func(c *faults.Cluster, p proxy)
}

// proxy is the part of faultproxy.Proxy the scenarios use.
type proxy interface {
	Pass()
	Blackhole()
	Reset() int
	Latency(time.Duration)
}

var netFaults = []netFault{
	{"blackhole-8s", "blackholed (connections open, no bytes either way) for 8 s, then passing again", true,
		func(c *faults.Cluster, p proxy) {
			p.Blackhole()
			c.Run(8 * time.Second)
			p.Pass()
		}},
	{"reset", "reset mid-stream (every connection gets an RST) 3 times, 2 s apart", true,
		func(c *faults.Cluster, p proxy) {
			n := 0
			for range 3 {
				c.Run(2 * time.Second)
				n += p.Reset()
			}
			c.Expectf(n >= 3, "the proxy reset %d connections, want at least 3", n)
		}},
	{"latency-20ms", "slowed by 20 ms per chunk each way for 10 s", false,
		func(c *faults.Cluster, p proxy) {
			p.Latency(20 * time.Millisecond)
			c.Run(10 * time.Second)
			p.Latency(0)
		}},
}

// TestNetworkMySQL runs each network fault on the path between the
// producer and MariaDB (the writers connect directly).
func TestNetworkMySQL(t *testing.T) {
	t.Parallel()
	for _, f := range netFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			c := suite.NewCluster(t, faults.Options{
				Name:        "net-mysql-" + f.name,
				Description: "the producer's connections to MariaDB are " + f.what,
				Broker:      e2e.JetStream,
				ProxyMySQL:  true,
			})
			c.Start()
			f.apply(c, c.MySQLProxy)
			c.Run(2 * time.Second)
			t.Logf("the producer restarted from its checkpoint %d times; proxy %+v", c.Recoveries(), c.MySQLProxy.Stats())
			c.Expectf(!f.wantRecovery || c.Recoveries() > 0, "the producer never restarted from its checkpoint: it did not notice the fault")
			c.Finish()
		})
	}
}

// TestNetworkBroker runs each network fault on the path between the
// producer and the broker, for both brokers.
func TestNetworkBroker(t *testing.T) {
	t.Parallel()
	for _, f := range netFaults {
		for _, kind := range brokers {
			t.Run(f.name+"/"+kind, func(t *testing.T) {
				t.Parallel()
				c := suite.NewCluster(t, faults.Options{
					Name:        "net-broker-" + f.name + "/" + kind,
					Description: "the producer's connections to the broker are " + f.what,
					Broker:      kind,
					ProxyBroker: true,
				})
				c.Start()
				f.apply(c, c.BrokerProxy)
				c.Run(2 * time.Second)
				t.Logf("the producer lost its broker connection %d times, restarted from its checkpoint %d times; proxy %+v",
					c.BrokerConnectionsLost(), c.Recoveries(), c.BrokerProxy.Stats())
				c.Expectf(!f.wantRecovery || c.BrokerConnectionsLost()+c.Recoveries() > 0,
					"the producer neither lost its broker connection nor restarted from its checkpoint: it did not notice the fault")
				c.Finish()
			})
		}
	}
}
