package faults

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/e2e"
	"github.com/dbsync/dbsync/test/faultproxy"
	"github.com/dbsync/dbsync/test/testenv"
)

// Options describes one scenario's cluster.
type Options struct {
	// Name is the scenario's name in its summary line and in
	// docs/reliability.md, e.g. "broker-kill/stan". Required.
	Name string
	// Description is one line for docs/reliability.md saying what the
	// scenario does. Required.
	Description string
	// Broker is e2e.Stan (NATS Streaming, the default) or e2e.JetStream.
	Broker string
	// ProxyMySQL puts Cluster.MySQLProxy between the producer and MariaDB
	// (the workload still writes directly).
	ProxyMySQL bool
	// ProxyBroker puts Cluster.BrokerProxy between the producer and the
	// broker (the checker still reads directly).
	ProxyBroker bool
	// MariaDB options for the source server.
	MariaDB testenv.MariaDBOptions
	// Workload shapes the write load (tables fx.t0, fx.t1 by default).
	Workload WorkloadOptions
	// DeliveryTimeout bounds how long Finish waits for the broker to hold
	// every committed row; 0 means 2 minutes (the producer's reconnect
	// backoff reaches 30s).
	DeliveryTimeout time.Duration
}

// Cluster is one scenario's world: a MariaDB, a broker process, optional
// fault proxies, the producer binary's configuration and process, and the
// write load. Build it with Suite.NewCluster; a scenario then runs
//
//	c.Start()                 // producer streaming, load flowing
//	… inject faults, c.Run(d) …
//	c.Finish()                // check, print the summary line, record it
//
// Env is the e2e environment the producer runs in: Env.Set changes its
// config before the next start, Env.Start starts another producer process,
// Env.Command runs an admin command, Env.Checkpoint reads the bolt
// checkpoint. Env's broker methods (Count, Read, WaitDistinct, StopBroker)
// do NOT apply: the broker is Cluster.Broker, a separate process; use its
// methods instead.
type Cluster struct {
	T           testing.TB
	Name        string
	Description string
	Env         *e2e.Env
	// DB is the source MariaDB (Env.DB): Stop/Start, Kill/Start, Exec.
	DB *testenv.MariaDB
	// Broker is the broker process the producer publishes to.
	Broker *Broker
	// MySQLProxy and BrokerProxy are nil unless Options asked for them.
	MySQLProxy  *faultproxy.Proxy
	BrokerProxy *faultproxy.Proxy
	// Producer is the running producer, set by StartProducer (and Start).
	Producer *e2e.Proc
	// Workload is the write load, set by StartWorkload (and Start).
	Workload *Workload
	// Consumer is the SDK consumer, set by StartConsumer; Finish then also
	// checks that it handed over every committed row once, in order.
	Consumer *Consumer

	suite   *Suite
	opts    Options
	began   time.Time
	notes   []string
	outputs []string // output of earlier producer processes
}

// ProducerClientID is the NATS Streaming client id the harness gives the
// producer.
const ProducerClientID = "dbsync-fx"

// NewCluster starts MariaDB (with the replication user dbsync/secret), the
// broker process, the requested proxies, and creates the workload tables;
// it configures the producer (Mysql.HeartbeatPeriod 1s, ReadTimeout 3s,
// bolt checkpoint in Env.Dir, log level info) but does not start it.
// Everything is torn down at test cleanup; when the test failed, the
// producer's and the broker's log tails are logged.
func (s *Suite) NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Name == "" || opts.Description == "" {
		t.Fatalf("faults: a scenario needs Options.Name and Options.Description (they go into docs/reliability.md)")
	}
	if opts.Broker == "" {
		opts.Broker = e2e.Stan
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = 2 * time.Minute
	}
	began := time.Now()
	env := e2e.NewEnvWith(t, s.ProducerBin, opts.Broker, opts.MariaDB)
	// Env started an in-process broker; the scenario's broker is a process.
	env.StopBroker()
	b := startBroker(t, s.brokerBin(opts.Broker), opts.Broker)
	if opts.Broker == e2e.JetStream {
		// Env's JetStream readers only dial the URL, so they work against
		// the process too.
		env.NATS = &testenv.NATS{Host: b.Host, Port: b.Port, Dir: b.Dir}
	}
	c := &Cluster{T: t, Name: opts.Name, Description: opts.Description, Env: env, DB: env.DB, Broker: b,
		suite: s, opts: opts, began: began}

	mysqlPort := c.DB.Port
	if opts.ProxyMySQL {
		c.MySQLProxy = faultproxy.Start(t, c.DB.Addr())
		mysqlPort = c.MySQLProxy.Port()
	}
	brokerPort := b.Port
	if opts.ProxyBroker {
		c.BrokerProxy = faultproxy.Start(t, b.Addr())
		brokerPort = c.BrokerProxy.Port()
	}
	env.Set("Mysql.Port", strconv.Itoa(mysqlPort))
	env.Set("Mysql.HeartbeatPeriod", "1s")
	env.Set("Mysql.ReadTimeout", "3s")
	env.Set("Log.Level", "info")
	switch opts.Broker {
	case e2e.Stan:
		env.Set("MQName", "stan")
		env.Cfg["Stan"] = map[string]any{"Host": "nats://" + b.Host, "Port": strconv.Itoa(brokerPort),
			"ClusterID": b.ClusterID, "ClientID": ProducerClientID}
	case e2e.JetStream:
		env.Set("MQName", "jetstream")
		env.Cfg["JetStream"] = map[string]any{"URL": "nats://" + b.Host + ":" + strconv.Itoa(brokerPort), "Stream": JetStreamStream}
	}
	CreateWorkloadTables(t, c.DB, opts.Workload)
	s.noteServer(t, c.DB)
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails()
		}
	})
	t.Logf("faults: cluster for %s ready in %s (broker %s on %s)", c.Name, time.Since(began).Round(time.Millisecond), b.Kind, b.Addr())
	return c
}

// logTails logs the end of the producer's and the broker's logs.
func (c *Cluster) logTails() {
	if c.Producer != nil {
		c.T.Logf("producer log (last 60 lines):\n%s", tail(c.ProducerOutput(), 60))
	}
	c.T.Logf("broker log (last 20 lines):\n%s", tail(readFrom(c.Broker.LogFile, 0), 20))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Tables returns the workload's tables, "fx.t0" ….
func (c *Cluster) Tables() []string { return c.opts.Workload.TableNames() }

// StartProducer starts the producer binary with Env's config (extraEnv
// added to its environment, "KEY=value", e.g. to arm a failpoint) and waits
// until it logs "binlog stream started" (30s). A producer started earlier
// must have ended (Kill, Stop, or a failpoint) first; its output stays in
// ProducerOutput.
func (c *Cluster) StartProducer(extraEnv ...string) *e2e.Proc {
	c.T.Helper()
	if c.Producer != nil {
		select {
		case <-c.Producer.Done():
			c.outputs = append(c.outputs, c.Producer.Output())
		default:
			c.T.Fatalf("faults: StartProducer while the previous producer (pid %d) is running", c.Producer.Pid())
		}
	}
	p := c.Env.Start(extraEnv...)
	c.Producer = p
	e2e.WaitLog(c.T, p, "binlog stream started")
	return p
}

// StartConsumer starts an SDK consumer of the workload tables (Consumer).
func (c *Cluster) StartConsumer(opts ConsumerOptions) *Consumer {
	c.T.Helper()
	c.Consumer = StartConsumer(c.T, c, c.Tables(), opts)
	return c.Consumer
}

// StartWorkload starts the write load on the workload tables.
func (c *Cluster) StartWorkload() *Workload {
	c.T.Helper()
	c.Workload = StartWorkload(c.T, c.DB, c.opts.Workload)
	return c.Workload
}

// Start starts the producer, then the load, and waits until 200 rows were
// committed and the producer delivered some of them: the scenario's
// faults then hit a pipeline under load.
func (c *Cluster) Start() {
	c.T.Helper()
	c.StartProducer()
	c.StartWorkload()
	c.Workload.WaitAcked(200, 30*time.Second)
	if !c.Broker.WaitDistinct(c.Tables()[0], 1, 30*time.Second) {
		c.T.Fatalf("faults: %s: the producer delivered nothing within 30s of the load starting:\n%s", c.Name, tail(c.ProducerOutput(), 40))
	}
}

// Run lets the load and the producer run for d.
func (c *Cluster) Run(d time.Duration) { time.Sleep(d) }

// ProducerOutput is the log of every producer process of the scenario so
// far, oldest first.
func (c *Cluster) ProducerOutput() string {
	out := strings.Join(c.outputs, "")
	if c.Producer != nil {
		out += c.Producer.Output()
	}
	return out
}

// recoveryLine is what the producer logs when it restarts its pipeline
// from the checkpoint after a failure.
const recoveryLine = "streaming failed; resuming from the last checkpoint"

// Recoveries counts how often the producer restarted its pipeline from the
// checkpoint after a failure (its "streaming failed; resuming from the last
// checkpoint" log line).
func (c *Cluster) Recoveries() int { return strings.Count(c.ProducerOutput(), recoveryLine) }

// brokerLostLines are what the producer's broker clients log when they
// lose their connection (they reconnect on their own, and the pipeline
// restarts from the checkpoint only when a publish was in flight).
var brokerLostLines = []string{
	"mq: NATS Streaming connection lost",
	"mq: NATS connection lost",
}

// BrokerConnectionsLost counts how often the producer logged that it lost
// its broker connection.
func (c *Cluster) BrokerConnectionsLost() int {
	out, n := c.ProducerOutput(), 0
	for _, l := range brokerLostLines {
		n += strings.Count(out, l)
	}
	return n
}

// Expectf records a problem for the scenario's result unless ok: the
// summary line then says FAIL. Use it for scenario-specific checks (the
// fault was noticed, the proxy saw reconnections…).
func (c *Cluster) Expectf(ok bool, format string, args ...any) {
	if !ok {
		c.notes = append(c.notes, fmt.Sprintf(format, args...))
	}
}

// KillDumpThreads kills every replication (Binlog Dump) connection of the
// producer's user on the server, as a DBA or the server itself would; it
// returns how many it killed.
func (c *Cluster) KillDumpThreads() int {
	c.T.Helper()
	db := c.DB.DB(c.T)
	rows, err := db.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' AND USER = 'dbsync'")
	if err != nil {
		c.T.Fatalf("faults: list binlog dump threads: %v", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			c.T.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	killed := 0
	for _, id := range ids {
		if _, err := db.Exec("KILL " + strconv.FormatInt(id, 10)); err != nil {
			c.T.Logf("faults: KILL %d: %v", id, err)
			continue
		}
		killed++
	}
	return killed
}

// WaitDumpThread waits until the producer has a binlog dump connection on
// the server (after a reconnect), failing the test after timeout.
func (c *Cluster) WaitDumpThread(timeout time.Duration) {
	c.T.Helper()
	db := c.DB.DB(c.T)
	deadline := time.Now().Add(timeout)
	for {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' AND USER = 'dbsync'").Scan(&n)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("faults: no binlog dump connection of the producer within %s (err %v):\n%s", timeout, err, tail(c.ProducerOutput(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Finish ends the scenario: it stops the load and reconciles what MariaDB
// committed, waits (Options.DeliveryTimeout) for the broker to hold every
// committed row, stops the producer with SIGTERM (it must exit 0), runs
// Check on the workload tables, prints and records the summary line, and
// fails the test when the result is FAIL. The scenario must have healed
// its faults first (proxy Pass, broker running, MariaDB up).
func (c *Cluster) Finish() Result {
	c.T.Helper()
	return c.FinishWith(CheckOptions{})
}

// FinishWith is Finish with check options; notes from Expectf and the
// reconciliation are added to opts.Notes.
func (c *Cluster) FinishWith(opts CheckOptions) Result {
	c.T.Helper()
	if c.Workload == nil || c.Producer == nil {
		c.T.Fatalf("faults: Finish before Start")
	}
	committed, notes := c.Workload.Reconcile()
	deadline := time.Now().Add(c.opts.DeliveryTimeout)
	for _, tbl := range c.Workload.Tables {
		if !c.Broker.WaitDistinct(tbl, len(committed[tbl]), time.Until(deadline)) {
			c.T.Logf("faults: %s: %s not fully delivered within %s", c.Name, tbl, c.opts.DeliveryTimeout)
		}
	}
	select {
	case <-c.Producer.Done():
		notes = append(notes, fmt.Sprintf("the producer exited on its own (code %d) before Finish", c.Producer.Wait(time.Second)))
	default:
		if code := c.Producer.Stop(); code != 0 {
			notes = append(notes, fmt.Sprintf("the producer exited %d after SIGTERM, want 0", code))
		}
	}
	var consumed *ConsumerResult
	if c.Consumer != nil {
		for _, tbl := range c.Workload.Tables {
			if !c.Consumer.WaitHanded(tbl, committed[tbl], time.Until(deadline)+10*time.Second) {
				c.T.Logf("faults: %s: the SDK consumer did not hand over all of %s", c.Name, tbl)
			}
		}
		kr := c.Consumer.Check(committed)
		consumed = &kr
		for _, p := range kr.Problems {
			notes = append(notes, "SDK consumer: "+p)
		}
	}
	opts.Notes = append(append(append([]string(nil), opts.Notes...), c.notes...), notes...)
	r := CheckWith(c.T, c, append(append([]string(nil), c.Workload.Tables...), opts.ExtraTables...), opts)
	r.Consumer = consumed
	if r.Committed == 0 {
		r.OK = false
		r.Note = strings.TrimPrefix(r.Note+"; the workload committed nothing", "; ")
	}
	c.Report(r)
	return r
}

// FinishHalted ends a scenario in which the producer stopped on purpose
// (a change it must not publish): the producer must have exited with
// code; the load stops and each table must hold a prefix of its committed
// rows with nothing behind the change at opts.NotAfter.
func (c *Cluster) FinishHalted(code int, opts CheckOptions) Result {
	c.T.Helper()
	if c.Workload == nil || c.Producer == nil {
		c.T.Fatalf("faults: Finish before Start")
	}
	_, notes := c.Workload.Reconcile()
	select {
	case <-c.Producer.Done():
		if got := c.Producer.Wait(time.Second); got != code {
			notes = append(notes, fmt.Sprintf("the producer exited %d, want %d", got, code))
		}
	case <-time.After(60 * time.Second):
		notes = append(notes, "the producer did not stop on its own within 60s")
		c.Producer.Kill()
	}
	opts.Prefix = true
	opts.Notes = append(append(append([]string(nil), opts.Notes...), c.notes...), notes...)
	r := CheckWith(c.T, c, append(append([]string(nil), c.Workload.Tables...), opts.ExtraTables...), opts)
	if r.Delivered == 0 {
		r.OK = false
		r.Note = strings.TrimPrefix(r.Note+"; the producer delivered nothing before it stopped", "; ")
	}
	c.Report(r)
	return r
}

// Report prints r's summary line (test log and stdout), records it for
// docs/reliability.md with the cluster's description and run time, and
// fails the test when r is not OK.
func (c *Cluster) Report(r Result) {
	c.T.Helper()
	line := r.Summary()
	c.T.Log(line)
	fmt.Println(line)
	c.suite.record(Record{Result: r, Broker: c.opts.Broker, Description: c.Description, Duration: time.Since(c.began)})
	if !r.OK {
		c.T.Errorf("%s: %s", r.Scenario, r.Note)
	}
}
