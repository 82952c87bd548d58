package deploy

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/position"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/wiring"
	"github.com/dbsync/dbsync/test/testenv"
)

// checkpointPermissions are the subjects the producer must be allowed to
// publish to, besides the base's, for its NATS checkpoint store
// (pkg/storage/nats.go) with cfg's bucket: for the checkpoint's bucket and
// its lease bucket, their keys, creating or updating and reading the
// bucket's stream, and direct gets of its keys.
func checkpointPermissions(cfg *config.Config) []string {
	var out []string
	for _, b := range []string{cfg.JetStream.CheckpointBucket, cfg.JetStream.CheckpointBucket + "_LEASE"} {
		out = append(out,
			"$KV."+b+".>",
			"$JS.API.STREAM.INFO.KV_"+b,
			"$JS.API.STREAM.CREATE.KV_"+b,
			"$JS.API.STREAM.UPDATE.KV_"+b,
			"$JS.API.DIRECT.GET.KV_"+b+".>",
		)
	}
	return out
}

// natsRoutes returns the host names the routes of StatefulSet s's pods
// must name: each pod through the StatefulSet's headless Service.
func natsRoutes(b *base) []string {
	s := b.StatefulSets[natsSet].Obj
	var out []string
	for i := range int(*s.Spec.Replicas) {
		out = append(out, fmt.Sprintf("%s-%d.%s", s.Name, i, s.Spec.ServiceName))
	}
	return out
}

// nkeyUser returns the user of opts with public nkey pub.
func nkeyUser(t *testing.T, opts *server.Options, pub string) *server.NkeyUser {
	t.Helper()
	for _, u := range opts.Nkeys {
		if u.Nkey == strings.TrimSpace(pub) {
			return u
		}
	}
	t.Fatalf("nats.conf: no nkey user %s", pub)
	return nil
}

// TestHANATSConfig parses the ha overlay's nats.conf as each of the three
// pods mounts it (its own POD_NAME) with the nats-server module's parser
// and checks the cluster block against the manifests: every server has
// its pod's name, listens for routes on the container port "cluster",
// routes to every pod through the headless Service with mutual TLS, and
// does not advertise pod addresses to clients. Everything else is the
// base's nats.conf: the same listeners, TLS, limits and users, the
// consumer's permissions unchanged, and the producer's extended by exactly
// the checkpoint store's (checkpointPermissions). The certificate
// deploy/README.md tells the operator to make names every route and the
// Service.
func TestHANATSConfig(t *testing.T) {
	b, sec := haApp(t)
	s, c := podContainer(t, b, natsSet, natsContainer)
	_, producer := podContainer(t, b, producerSet, producerContainer)
	cfg := producerConfig(t, b, producer)
	routePort, ok := namedPort(c, "cluster")
	if !ok {
		t.Fatalf("StatefulSet %q, container %q: no port named \"cluster\" (%s)", s.Name, c.Name, describePorts(c))
	}
	clientPort, _ := namedPort(c, "client")
	wantRoutes := natsRoutes(b)

	var opts []*server.Options
	for i := range int(*s.Spec.Replicas) {
		o, root, _ := natsPodN(t, b, i)
		opts = append(opts, o)
		pod := fmt.Sprintf("%s-%d", s.Name, i)
		if o.ServerName != pod {
			t.Errorf("nats.conf in pod %s: server_name is %q, want the pod's name (JetStream needs one per server)", pod, o.ServerName)
		}
		if o.Port != int(clientPort.ContainerPort) {
			t.Errorf("nats.conf in pod %s: port %d is not the container port \"client\" %d", pod, o.Port, clientPort.ContainerPort)
		}
		cl := o.Cluster
		if cl.Name == "" {
			t.Errorf("nats.conf in pod %s: the cluster block has no name", pod)
		}
		if cl.Port != int(routePort.ContainerPort) {
			t.Errorf("nats.conf in pod %s: cluster port %d is not the container port \"cluster\" %d", pod, cl.Port, routePort.ContainerPort)
		}
		if cl.TLSConfig == nil {
			t.Errorf("nats.conf in pod %s: the cluster block has no tls: routes would carry every message in plain text", pod)
		}
		if !cl.NoAdvertise {
			t.Errorf("nats.conf in pod %s: cluster no_advertise is off: clients would be told pod addresses the certificate does not name", pod)
		}
		var routes []string
		for _, r := range o.Routes {
			if r.Port() != strconv.Itoa(int(routePort.ContainerPort)) {
				t.Errorf("nats.conf in pod %s: route %s is not on the route port %d", pod, r, routePort.ContainerPort)
			}
			routes = append(routes, r.Hostname())
		}
		slices.Sort(routes)
		if !slices.Equal(routes, wantRoutes) {
			t.Errorf("nats.conf in pod %s: routes to %q, want every pod through the headless Service: %q", pod, routes, wantRoutes)
		}
		if !o.JetStream {
			t.Errorf("nats.conf in pod %s: JetStream is off", pod)
		} else if m, ok := mountOf(c, fromRoot(o.StoreDir, root)); !ok || !slices.ContainsFunc(s.Spec.VolumeClaimTemplates, func(v corev1.PersistentVolumeClaim) bool { return v.Name == m.Name }) {
			t.Errorf("nats.conf in pod %s: jetstream store_dir %q is not on a volumeClaimTemplate", pod, fromRoot(o.StoreDir, root))
		}
	}

	// The rest is the base's nats.conf.
	ex, exSec := exampleApp(t)
	baseOpts, _, _ := natsPod(t, ex)
	ha := opts[0]
	if ha.TLSConfig == nil || ha.AllowNonTLS || ha.TLSTimeout != baseOpts.TLSTimeout {
		t.Errorf("nats.conf: the clients' tls block differs from the base's")
	}
	for _, f := range []struct {
		name      string
		ha, basev any
	}{
		{"http", fmt.Sprint(ha.HTTPHost, ":", ha.HTTPPort), fmt.Sprint(baseOpts.HTTPHost, ":", baseOpts.HTTPPort)},
		{"max_payload", ha.MaxPayload, baseOpts.MaxPayload},
		{"max_file_store", ha.JetStreamMaxStore, baseOpts.JetStreamMaxStore},
		{"max_memory_store", ha.JetStreamMaxMemory, baseOpts.JetStreamMaxMemory},
		{"users", len(ha.Nkeys) + len(ha.Users), len(baseOpts.Nkeys) + len(baseOpts.Users)},
		{"leafnodes, gateway, websocket, mqtt ports", []int{ha.LeafNode.Port, ha.Gateway.Port, ha.Websocket.Port, ha.MQTT.Port}, []int{0, 0, 0, 0}},
	} {
		if fmt.Sprint(f.ha) != fmt.Sprint(f.basev) {
			t.Errorf("nats.conf: %s is %v, the base's is %v", f.name, f.ha, f.basev)
		}
	}
	perms := func(u *server.NkeyUser) (pubAllow, pubDeny, subAllow, subDeny []string) {
		p := u.Permissions
		if p == nil || p.Publish == nil || p.Subscribe == nil {
			t.Fatalf("nats.conf: user %s lacks publish or subscribe permissions", u.Nkey)
		}
		return slices.Sorted(slices.Values(p.Publish.Allow)), slices.Sorted(slices.Values(p.Publish.Deny)),
			slices.Sorted(slices.Values(p.Subscribe.Allow)), slices.Sorted(slices.Values(p.Subscribe.Deny))
	}
	for _, u := range []struct {
		who                string
		haPub, basePub     string
		extra              []string
		haUser, baseUserOf func() *server.NkeyUser
	}{
		{who: "producer", extra: checkpointPermissions(cfg),
			haUser: func() *server.NkeyUser { return nkeyUser(t, ha, sec.ProducerPub) }, baseUserOf: func() *server.NkeyUser { return nkeyUser(t, baseOpts, exSec.ProducerPub) }},
		{who: "consumer",
			haUser: func() *server.NkeyUser { return nkeyUser(t, ha, sec.ConsumerPub) }, baseUserOf: func() *server.NkeyUser { return nkeyUser(t, baseOpts, exSec.ConsumerPub) }},
	} {
		hpa, hpd, hsa, hsd := perms(u.haUser())
		bpa, bpd, bsa, bsd := perms(u.baseUserOf())
		want := slices.Sorted(slices.Values(append(slices.Clone(bpa), u.extra...)))
		if !slices.Equal(hpa, want) {
			t.Errorf("nats.conf: the %s may publish to %q, want the base's and the checkpoint store's: %q", u.who, hpa, want)
		}
		if !slices.Equal(hpd, bpd) || !slices.Equal(hsa, bsa) || !slices.Equal(hsd, bsd) {
			t.Errorf("nats.conf: the %s's publish deny or subscribe permissions differ from the base's", u.who)
		}
	}

	// The certificate deploy/README.md makes names the routes and the
	// Service.
	data, err := os.ReadFile(sec.NATSCert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range append(wantRoutes, "dbsync-nats", "dbsync-nats.dbsync.svc") {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("deploy/README.md's subjectAltName for the ha overlay %q: %v", sec.CertNames, err)
		}
	}
}

// haNode is one server of the cluster runHACluster runs.
type haNode struct {
	srv *server.Server
	log *serverLog
	// URL is the server's client address, tls://127.0.0.1:PORT.
	URL string
}

// runHACluster runs one NATS server per pod of the NATS StatefulSet, each
// from nats.conf as its pod mounts it (its POD_NAME, the TLS files and
// nkeys of the Secrets and ConfigMaps, its own store directory) with only
// the addresses moved to 127.0.0.1: the client port is a free one,
// monitoring is off, and the routes, which name the pods through the
// headless Service, point at the route ports of the test's servers (the
// certificate names 127.0.0.1). It waits until the cluster's JetStream
// leader sees every server online and every server is current, and shuts
// them down at cleanup.
func runHACluster(t *testing.T, b *base) []*haNode {
	t.Helper()
	routes := natsRoutes(b)
	ports := map[string]int{}
	for _, h := range routes {
		ports[h] = testenv.FreePort(t)
	}
	nodes := make([]*haNode, len(routes))
	for i := range nodes {
		opts, _, _ := natsPodN(t, b, i)
		opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
		opts.NoSigs = true
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", ports[routes[i]]
		for j, r := range opts.Routes {
			p, ok := ports[r.Hostname()]
			if !ok {
				t.Fatalf("nats.conf: route %s names no pod of the StatefulSet (%q)", r, routes)
			}
			u := *r
			u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
			opts.Routes[j] = &u
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("nats-server %s from nats.conf: %v", opts.ServerName, err)
		}
		log := &serverLog{}
		srv.SetLoggerV2(log, false, false, false)
		t.Cleanup(srv.Shutdown)
		nodes[i] = &haNode{srv: srv, log: log}
	}
	for _, n := range nodes {
		go n.srv.Start()
	}
	logs := func() string {
		var parts []string
		for i, n := range nodes {
			parts = append(parts, fmt.Sprintf("--- %s:\n%s", routes[i], n.log.text()))
		}
		return strings.Join(parts, "\n")
	}
	for _, n := range nodes {
		if !n.srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("a nats-server from nats.conf did not start within 10s:\n%s", logs())
		}
		n.URL = fmt.Sprintf("tls://127.0.0.1:%d", n.srv.Addr().(*net.TCPAddr).Port)
	}
	// Ready when the JetStream leader knows every server online (it places
	// a new stream's replicas only on those) and every server is current,
	// for half a second under the same leader.
	deadline := time.Now().Add(30 * time.Second)
	var leader string
	var since time.Time
	for {
		online, current, now := 0, true, ""
		for _, n := range nodes {
			if n.srv.JetStreamIsLeader() {
				online, now = len(n.srv.JetStreamClusterPeers()), n.srv.Name()
			}
			current = current && n.srv.JetStreamIsCurrent()
		}
		switch {
		case online != len(nodes) || !current:
			leader = ""
		case now != leader:
			leader, since = now, time.Now()
		case time.Since(since) >= 500*time.Millisecond:
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("the three servers from nats.conf formed no JetStream cluster within 30s (routes with mutual TLS):\n%s", logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkpointScenario runs the NATS checkpoint store and its lease the way
// the producer and its standby use them, opened by pkg/wiring from their
// configs (active and standby may name different servers), each step
// bounded by step:
//   - the producer opens the store (creating the bucket); no checkpoint
//     yet; an admin command saves one (no lease held yet);
//   - the producer takes the lease (creating its bucket), saves under it
//     and reads the checkpoint back;
//   - the standby opens the store, finds the lease held (the error names
//     the holder) and cannot save; `checkpoint show` opens the store
//     without creating anything and reads the producer's checkpoint;
//   - the producer stops and gives the lease back; the standby takes it,
//     reads the producer's checkpoint, saves its own and gives it back.
//
// It returns the checkpoint last saved, or the first step that failed.
// With retried set, a failed step is tried again until its time is up, as
// a producer that failed to start is started again (a cluster just formed
// answers "no responders" while a new bucket's replicas come up, or "no
// suitable peers" while a new JetStream leader has not heard from every
// server); each failure is passed to retried. A permission the store
// lacks fails every time.
func checkpointScenario(ctx context.Context, active, standby *config.Config, step time.Duration, retried func(error)) (position.Position, error) {
	ttl := active.HA.LeaseTTL.Duration()
	const role = "dbsync producer"
	first := position.Position{File: "mysql-bin.000001", Pos: 4}
	second := position.Position{File: "mysql-bin.000001", Pos: 1234}
	third := position.Position{File: "mysql-bin.000002", Pos: 4}
	at := func(want position.Position, got position.Position, err error) error {
		if err != nil {
			return err
		}
		if got.File != want.File || got.Pos != want.Pos {
			return fmt.Errorf("the checkpoint is %s, want %s", got, want)
		}
		return nil
	}
	var a, s storage.PositionStorager
	var held storage.Lease
	defer func() {
		for _, st := range []storage.PositionStorager{a, s} {
			if st != nil {
				st.Close()
			}
		}
	}()
	for _, st := range []struct {
		what string
		do   func(ctx context.Context) error
	}{
		{"the producer opens the store (creating the bucket)", func(ctx context.Context) (err error) {
			a, err = wiring.OpenStore(ctx, active, nil)
			return err
		}},
		{"the producer reads no checkpoint yet", func(ctx context.Context) error {
			if got, err := a.Get(ctx); err == nil {
				return fmt.Errorf("found %s, want storage.ErrNoCheckpoint", got)
			} else if !errors.Is(err, storage.ErrNoCheckpoint) {
				return fmt.Errorf("%w, want storage.ErrNoCheckpoint", err)
			}
			return nil
		}},
		{"an admin command saves a checkpoint (no lease held yet)", func(ctx context.Context) error { return a.Save(ctx, first) }},
		{"the producer takes the lease (creating its bucket)", func(ctx context.Context) (err error) {
			held, err = wiring.HoldStoreFor(ctx, a, role, ttl)
			return err
		}},
		{"the producer saves under the lease", func(ctx context.Context) error { return a.Save(ctx, second) }},
		{"the producer reads its checkpoint back", func(ctx context.Context) error { got, err := a.Get(ctx); return at(second, got, err) }},
		{"the standby opens the store", func(ctx context.Context) (err error) {
			s, err = wiring.OpenStore(ctx, standby, nil)
			return err
		}},
		{"the standby finds the lease held, naming the holder", func(ctx context.Context) error {
			l, err := wiring.HoldStoreFor(ctx, s, role, ttl)
			if err == nil {
				l.Release()
				return errors.New("it took the lease the producer holds")
			}
			if !errors.Is(err, storage.ErrHeld) || !strings.Contains(err.Error(), held.Owner()) {
				return fmt.Errorf("%w, want storage.ErrHeld naming %q", err, held.Owner())
			}
			return nil
		}},
		{"the standby cannot save", func(ctx context.Context) error {
			if err := s.Save(ctx, first); err == nil {
				return errors.New("it saved while the producer holds the lease")
			} else if !errors.Is(err, storage.ErrHeld) {
				return fmt.Errorf("%w, want storage.ErrHeld", err)
			}
			return nil
		}},
		{"`checkpoint show` opens the store without creating anything and reads the checkpoint", func(ctx context.Context) error {
			i, err := wiring.InspectStore(ctx, active, nil)
			if err != nil {
				return err
			}
			defer i.Close()
			got, err := i.Get(ctx)
			return at(second, got, err)
		}},
		{"the producer stops and gives the lease back", func(ctx context.Context) error {
			held.Release()
			err := a.Close()
			a = nil
			return err
		}},
		{"the standby takes the lease over", func(ctx context.Context) (err error) {
			held, err = wiring.HoldStoreFor(ctx, s, role, ttl)
			return err
		}},
		{"the standby reads the producer's checkpoint", func(ctx context.Context) error { got, err := s.Get(ctx); return at(second, got, err) }},
		{"the standby saves", func(ctx context.Context) error { return s.Save(ctx, third) }},
		{"the standby gives the lease back", func(ctx context.Context) error { held.Release(); return nil }},
	} {
		sctx, cancel := context.WithTimeout(ctx, step)
		err := st.do(sctx)
		for retried != nil && err != nil && sctx.Err() == nil {
			retried(fmt.Errorf("%s: %w", st.what, err))
			time.Sleep(100 * time.Millisecond)
			err = st.do(sctx)
		}
		cancel()
		if err != nil {
			return position.Position{}, fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return third, nil
}

// TestHANATSCluster runs a real three-node cluster from the ha overlay's
// nats.conf (runHACluster: users, permissions and TLS as written, routes
// with mutual TLS) and dbsync's own code against it with the producer's
// config as loaded in the pod and its nkey seed: the checkpoint store and
// its lease as the producer and its standby (connected to another server)
// use them (checkpointScenario), and the producer's queue publishing to its
// stream; the stream and both buckets are kept on all three servers, and
// nothing the producer did was a permissions violation. The consumer user
// (its seed, the CA) is refused whatever it tries on the checkpoint
// buckets: opening, reading or writing a key, subscribing to them, a
// consumer on them; the checkpoint stays the producer's.
func TestHANATSCluster(t *testing.T) {
	b, sec := haApp(t)
	nodes := runHACluster(t, b)
	_, producer := podContainer(t, b, producerSet, producerContainer)
	cfg := producerConfigEnv(t, b, producer, map[string]string{"DBSYNC_JETSTREAM_URL": nodes[0].URL})
	standby := producerConfigEnv(t, b, producer, map[string]string{"DBSYNC_JETSTREAM_URL": nodes[1].URL})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	saved, err := checkpointScenario(ctx, cfg, standby, 15*time.Second, func(err error) {
		t.Logf("transient, tried again: %v", err)
	})
	if err != nil {
		t.Fatalf("the checkpoint store on the cluster, with the producer's config and nkey: %v", err)
	}
	plog := logrus.New()
	plog.SetOutput(io.Discard)
	// A stream is placed only on servers the JetStream leader has heard
	// from since it was elected: a leader elected anew may refuse for a
	// moment ("no suitable peers"). The producer then fails to start and
	// is started again.
	var q mq.MessageQueue
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if q, err = wiring.OpenQueue(ctx, cfg, plog); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer: wiring.OpenQueue on the cluster (creating stream %s at %d replicas): %v", cfg.JetStream.Stream, cfg.JetStream.Replicas, err)
		}
		t.Logf("producer: wiring.OpenQueue: %v; opening it again, as a restarted producer would", err)
	}
	// A batch the new stream refuses while its leader is just elected
	// ("wrong last sequence" on an empty stream) is published again, as the
	// producer publishes a refused batch again from its checkpoint; here on
	// a queue opened anew, which reads the stream's newest message again.
	batch := newOrderChanges(cfg, "shop", "orders").next(3)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err = q.Publish(ctx, batch); err == nil {
			break
		}
		q.Close()
		if time.Now().After(deadline) {
			t.Fatalf("producer: Publish to the stream at %d replicas: %v", cfg.JetStream.Replicas, err)
		}
		t.Logf("producer: Publish: %v; publishing again on a queue opened anew", err)
		if q, err = wiring.OpenQueue(ctx, cfg, plog); err != nil {
			t.Fatalf("producer: wiring.OpenQueue again: %v", err)
		}
	}
	if err := q.Close(); err != nil {
		t.Errorf("producer: Close: %v", err)
	}
	// Every server holds the stream and both buckets at three replicas,
	// and the stream the published changes (a follower within moments).
	bucket := cfg.JetStream.CheckpointBucket
	for i, n := range nodes {
		var held map[string]server.StreamDetail
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			held = map[string]server.StreamDetail{}
			for _, sd := range jsz(t, n.srv) {
				held[sd.Name] = sd
			}
			if held[cfg.JetStream.Stream].State.Msgs == uint64(len(batch)) || time.Now().After(deadline) {
				break
			}
		}
		for _, name := range []string{cfg.JetStream.Stream, "KV_" + bucket, "KV_" + bucket + "_LEASE"} {
			sd, ok := held[name]
			switch {
			case !ok:
				t.Errorf("server %d holds no stream %s", i, name)
			case sd.Config == nil || sd.Config.Replicas != len(nodes):
				t.Errorf("server %d: stream %s is not at %d replicas (%+v)", i, name, len(nodes), sd.Config)
			}
		}
		if got := held[cfg.JetStream.Stream].State.Msgs; got != uint64(len(batch)) {
			t.Errorf("server %d: stream %s holds %d messages, want the %d published", i, cfg.JetStream.Stream, got, len(batch))
		}
		if strings.Contains(n.log.text(), "Violation") {
			t.Errorf("server %d logged a permissions violation while the producer ran: nats.conf denies the producer something it does:\n%s", i, n.log.text())
		}
	}

	// The consumer, connected to the third server.
	dir := t.TempDir()
	seed := filepath.Join(dir, "nats.nk")
	if err := os.WriteFile(seed, []byte(sec.ConsumerSeed), 0o600); err != nil {
		t.Fatal(err)
	}
	cv := &violations{}
	cnc := connect(t, nodes[2].URL, sec.NATSCA, seed, cv)
	cjs, err := jetstream.New(cnc)
	if err != nil {
		t.Fatal(err)
	}
	key := cfg.Storage.PosKey
	var attempts []deniedCall
	for _, bk := range []string{bucket, bucket + "_LEASE"} {
		attempts = append(attempts,
			deniedCall{"open the bucket " + bk, "$JS.API.STREAM.INFO.KV_" + bk, func(ctx context.Context) error {
				_, err := cjs.KeyValue(ctx, bk)
				return err
			}},
			deniedCall{"read a key of " + bk, "$JS.API.DIRECT.GET.KV_" + bk, func(ctx context.Context) error {
				_, err := cnc.RequestWithContext(ctx, "$JS.API.DIRECT.GET.KV_"+bk+".$KV."+bk+"."+key, nil)
				return err
			}},
			deniedCall{"write a key of " + bk, "$KV." + bk + "." + key, func(ctx context.Context) error {
				_, err := cjs.Publish(ctx, "$KV."+bk+"."+key, []byte(`{"forged":true}`))
				return err
			}},
			deniedCall{"read " + bk + " through a consumer", "$JS.API.CONSUMER.CREATE.KV_" + bk, func(ctx context.Context) error {
				_, err := cjs.CreateOrUpdateConsumer(ctx, "KV_"+bk, jetstream.ConsumerConfig{})
				return err
			}},
			deniedCall{"subscribe to the keys of " + bk, "$KV." + bk + ".>", func(ctx context.Context) error {
				if _, err := cnc.SubscribeSync("$KV." + bk + ".>"); err != nil {
					return err
				}
				if err := cnc.FlushWithContext(ctx); err != nil {
					return err
				}
				return errors.New("subscribed; the server reports the violation asynchronously")
			}},
		)
	}
	expectDenied(t, "a consumer", cv, attempts)

	// The checkpoint is still the one the standby saved.
	st, err := wiring.InspectStore(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("producer: open the store again: %v", err)
	}
	defer st.Close()
	if got, err := st.Get(ctx); err != nil || got.File != saved.File || got.Pos != saved.Pos {
		t.Errorf("the checkpoint after the consumer's attempts: %s, %v; want %s", got, err, saved)
	}
}

// deniedCall is a request a user must not be able to make: call must
// fail, and the server report a permissions violation naming subject.
type deniedCall struct {
	what, subject string
	call          func(ctx context.Context) error
}

// expectDenied makes the calls at once on the connection v watches and
// checks each one is denied.
func expectDenied(t *testing.T, who string, v *violations, calls []deniedCall) {
	t.Helper()
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			errs[i] = c.call(ctx)
		}()
	}
	wg.Wait()
	for i, c := range calls {
		if errs[i] == nil {
			t.Errorf("%s could %s", who, c.what)
			continue
		}
		v.waitFor(t, who, c.what, c.subject)
	}
}

// TestHANATSPermissionsAreNeeded shows that the producer's permissions on
// the checkpoint buckets are exactly what the store needs: with all of
// them checkpointScenario passes, and without any one of them it fails. It
// runs one server per case from the ha overlay's nats.conf (its users,
// permissions and TLS as written) without its cluster block, the buckets
// at one replica, all cases at once (a denied request fails only when its
// step's time is up).
func TestHANATSPermissionsAreNeeded(t *testing.T) {
	b, sec := haApp(t)
	_, producer := podContainer(t, b, producerSet, producerContainer)
	extra := checkpointPermissions(producerConfig(t, b, producer))

	type run struct {
		without string // "" for none
		cfg     *config.Config
		log     *serverLog
		err     error
	}
	// Parsed and started one after the other (the environment is the
	// process's), then run together.
	var runs []*run
	for _, p := range append([]string{""}, extra...) {
		opts, _, _ := natsPod(t, b)
		if p != "" {
			perms := nkeyUser(t, opts, sec.ProducerPub).Permissions.Publish
			i := slices.Index(perms.Allow, p)
			if i < 0 {
				t.Fatalf("nats.conf: the producer may not publish to %s (%q)", p, perms.Allow)
			}
			perms.Allow = slices.Delete(perms.Allow, i, i+1)
		}
		opts.Host, opts.Port, opts.HTTPPort, opts.NoSigs = "127.0.0.1", -1, 0, true
		opts.Cluster, opts.Routes = server.ClusterOpts{}, nil
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("nats-server from nats.conf: %v", err)
		}
		r := &run{without: p, log: &serverLog{}}
		srv.SetLoggerV2(r.log, false, false, false)
		go srv.Start()
		t.Cleanup(srv.Shutdown)
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats-server from nats.conf did not start within 10s:\n%s", r.log.text())
		}
		url := fmt.Sprintf("tls://127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)
		r.cfg = producerConfigEnv(t, b, producer, map[string]string{"DBSYNC_JETSTREAM_URL": url})
		r.cfg.JetStream.Replicas = 1
		runs = append(runs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, r.err = checkpointScenario(ctx, r.cfg, r.cfg, 3*time.Second, nil)
		}()
	}
	wg.Wait()
	for _, r := range runs {
		switch {
		case r.without == "" && r.err != nil:
			t.Errorf("with the permissions of nats.conf: %v\nserver log:\n%s", r.err, r.log.text())
		case r.without == "" && strings.Contains(r.log.text(), "Violation"):
			t.Errorf("with the permissions of nats.conf the server logged a violation:\n%s", r.log.text())
		case r.without != "" && r.err == nil:
			t.Errorf("the checkpoint store works without %s: nats.conf grants the producer more than it needs", r.without)
		case r.without != "":
			t.Logf("without %s it fails, as it should: %v", r.without, r.err)
		}
	}
}
