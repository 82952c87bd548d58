// Package faults is dbsync's fault-injection suite (make test-faults): the
// real producer binary streams a steady write load from MariaDB to a broker
// while a scenario breaks something (a broker killed, stopped or frozen,
// MariaDB restarted, its replication connection killed, a network path
// blackholed, reset or slowed through test/faultproxy); afterwards a
// checker compares what MariaDB committed with what the broker holds.
//
// # Writing a scenario
//
// The package's test binary builds everything once in TestMain (see
// Suite). A scenario is one Test function:
//
//	func TestBrokerKill(t *testing.T) {
//		t.Parallel()
//		c := suite.NewCluster(t, faults.Options{
//			Name:        "broker-kill/stan",              // summary line and doc row
//			Description: "NATS Streaming killed with SIGKILL under load, restarted after 2 s",
//			Broker:      e2e.Stan,                        // or e2e.JetStream
//			ProxyMySQL:  false,                           // c.MySQLProxy in front of MariaDB
//			ProxyBroker: false,                           // c.BrokerProxy in front of the broker
//		})
//		c.Env.Set("Batch.MaxRows", 64)                   // any producer config before the start
//		c.Start()                                        // producer streaming, load flowing
//		c.Broker.Kill()                                  // the fault …
//		c.Run(2 * time.Second)
//		c.Broker.Start()                                 // … healed
//		c.Run(3 * time.Second)
//		c.Expectf(c.Recoveries() > 0, "the producer did not notice")
//		c.Finish()                                       // check, summary line, record, fail on FAIL
//	}
//
// What a Cluster offers:
//
//   - c.DB (testenv.MariaDB): Stop/Start, Kill/Start, Exec; c.KillDumpThreads
//     and c.WaitDumpThread for the producer's replication connection.
//   - c.Broker (Broker, a child process): Kill (SIGKILL), Stop (SIGTERM),
//     Start (same port and store), Freeze (SIGSTOP), Thaw (SIGCONT), and the
//     readers Count, Read, RawMessages, WaitDistinct taking "db.table".
//   - c.MySQLProxy, c.BrokerProxy (faultproxy.Proxy): Pass, Blackhole,
//     Reset, Latency, Refuse.
//   - c.Env (e2e.Env): Set config keys, Start another producer process (its
//     extra environment variables, e.g. for failpoints), Command (admin
//     commands), Checkpoint (the bolt checkpoint). c.StartProducer(extraEnv...)
//     starts the producer and waits for its stream; after c.Producer was
//     killed (or died at a failpoint) call c.StartProducer again (earlier
//     output stays in c.ProducerOutput).
//   - c.Workload: one writer per table fx.t0, fx.t1 (Options.Workload sets
//     tables, rows per transaction, pace); Acked, WaitAcked, Reconcile.
//   - c.Recoveries counts the producer's restarts from its checkpoint,
//     c.BrokerConnectionsLost its lost broker connections (both read from
//     the producer's log, all processes of the scenario); c.Expectf adds a
//     scenario-specific condition to the result (FAIL when false).
//   - Suite.StartBroker starts an extra broker process; faultproxy.Start an
//     extra proxy (point any config key at its Port).
//
// A scenario must heal its fault before Finish (proxy Pass and Latency(0),
// broker started or thawed, MariaDB started, a producer running). Finish
// waits up to Options.DeliveryTimeout (2 minutes) for delivery: the
// producer's reconnect backoff reaches 30 s. Scenarios run with t.Parallel;
// each cluster uses its own servers, ports and directories.
//
// Finish stops the load, reconciles the committed ids with MariaDB (a COMMIT
// that failed counts only if the row is there), waits for the broker to hold
// every committed row, stops the producer (exit 0 expected), and runs Check:
// no committed row lost, first deliveries in binlog and commit order,
// duplicates only as byte-identical in-order replays, every value equal to
// the row as SELECTed now in the JSON form of docs/envelope.md. It prints
// one line, "scenario=<name> committed=N delivered=N duplicates=N lost=N
// result=PASS|FAIL", records it, and fails the test on FAIL. FinishWith
// takes CheckOptions (own committed order, a custom row comparison for
// rows written before a schema change). A scenario that needs several
// phases can call Check or CheckWith directly and Report the Result.
//
// With DBSYNC_WRITE_RELIABILITY_DOC=1 (make test-faults) the suite writes
// docs/reliability.md from the recorded results when the tests end; plain
// go test leaves the repository untouched.
package faults
