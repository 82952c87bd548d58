package faults_test

import (
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/faults"
)

// TestMariaDBRestart shuts MariaDB down cleanly under load and starts it
// again: the producer loses its replication connection, reconnects with
// backoff and resumes from its checkpoint in the rotated binlog.
func TestMariaDBRestart(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{
		Name:        "mariadb-restart",
		Description: "MariaDB is shut down (SIGTERM) under load and started again after 2 s; the writers' failed commits are reconciled",
		Broker:      e2e.JetStream,
	})
	c.Start()
	c.DB.Stop(t)
	c.Run(2 * time.Second)
	c.DB.Start(t)
	c.WaitDumpThread(60 * time.Second)
	c.Run(3 * time.Second)
	c.Expectf(c.Recoveries() > 0, "the producer never restarted from its checkpoint after MariaDB went away")
	c.Finish()
}

// TestMariaDBKill crashes MariaDB with SIGKILL under load; it runs crash
// recovery on start.
func TestMariaDBKill(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{
		Name:        "mariadb-kill",
		Description: "MariaDB is killed with SIGKILL under load and restarted (crash recovery); commits in flight are reconciled with SELECT",
		Broker:      e2e.Stan,
	})
	c.Start()
	c.DB.Kill(t)
	c.Run(time.Second)
	c.DB.Start(t)
	c.WaitDumpThread(60 * time.Second)
	c.Run(3 * time.Second)
	c.Expectf(c.Recoveries() > 0, "the producer never restarted from its checkpoint after MariaDB crashed")
	c.Finish()
}

// TestReplicationConnectionKilled kills the producer's binlog dump thread
// on the server (KILL <id>) three times under load.
func TestReplicationConnectionKilled(t *testing.T) {
	t.Parallel()
	c := suite.NewCluster(t, faults.Options{
		Name:        "mariadb-kill-dump-thread",
		Description: "the producer's replication connection (its Binlog Dump thread) is KILLed on the server 3 times, 2 s apart, under load",
		Broker:      e2e.JetStream,
	})
	c.Start()
	killed := 0
	for range 3 {
		c.WaitDumpThread(60 * time.Second)
		c.Run(2 * time.Second)
		killed += c.KillDumpThreads()
	}
	c.WaitDumpThread(60 * time.Second)
	c.Run(2 * time.Second)
	c.Expectf(killed >= 3, "killed %d binlog dump threads, want 3", killed)
	c.Expectf(c.Recoveries() >= 3, "the producer restarted from its checkpoint %d times after 3 killed replication connections, want 3", c.Recoveries())
	c.Finish()
}
