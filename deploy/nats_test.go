package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/envelope"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/wiring"
)

// natsSet and natsContainer are the NATS StatefulSet and container.
const (
	natsSet       = "dbsync-nats"
	natsContainer = "nats"
)

// podContainer returns StatefulSet name's container cname in b.
func podContainer(t *testing.T, b *base, name, cname string) (*appsv1.StatefulSet, corev1.Container) {
	t.Helper()
	ls, ok := b.StatefulSets[name]
	if !ok {
		t.Fatalf("no StatefulSet %q", name)
	}
	for _, c := range ls.Obj.Spec.Template.Spec.Containers {
		if c.Name == cname {
			return ls.Obj, c
		}
	}
	t.Fatalf("no container %q in StatefulSet %q", cname, name)
	return nil, corev1.Container{}
}

// natsPod lays out the NATS container's mounted files under a temporary
// root, sets the environment the container gets (resolving ConfigMap and
// Secret references), and parses its config file the way nats-server -c
// does. It returns the parsed options, the root, and the config's text as
// mounted.
func natsPod(t *testing.T, b *base) (*server.Options, string, string) {
	t.Helper()
	return natsPodN(t, b, 0)
}

// natsPodN is natsPod for the StatefulSet's pod of ordinal n (its name
// is what a fieldRef to metadata.name gives): every pod gets its own root,
// so the JetStream store of each is a directory of its own.
func natsPodN(t *testing.T, b *base, n int) (*server.Options, string, string) {
	t.Helper()
	s, c := podContainer(t, b, natsSet, natsContainer)
	at := fmt.Sprintf("StatefulSet %q, container %q", s.Name, c.Name)
	podName := fmt.Sprintf("%s-%d", s.Name, n)
	args := append(append([]string(nil), c.Command...), c.Args...)
	i := slices.Index(args, "-c")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("%s: command/args %q pass no -c CONFIG_FILE", at, args)
	}
	confPath := args[i+1]
	root := t.TempDir()
	for _, p := range podFS(b, s, c, root) {
		t.Error(p)
	}
	rootedConf := filepath.Join(root, filepath.FromSlash(confPath))
	text, err := os.ReadFile(rootedConf)
	if err != nil {
		t.Fatalf("%s: -c %s is no file of its mounts (%s): %v", at, confPath, describeMounts(c), err)
	}
	rooted, unmounted := rootPaths(string(text), c, root)
	for _, p := range unmounted {
		t.Errorf("%s: %s names %q, which is under no volumeMount (%s)", at, confPath, p, describeMounts(c))
	}
	if err := os.WriteFile(rootedConf, []byte(rooted), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			continue
		}
		var v string
		switch r := e.ValueFrom; {
		case r == nil:
			v = e.Value
		case r.ConfigMapKeyRef != nil:
			v = b.ConfigMaps[r.ConfigMapKeyRef.Name].Data[r.ConfigMapKeyRef.Key]
		case r.SecretKeyRef != nil:
			v = b.Secrets[r.SecretKeyRef.Name].Data[r.SecretKeyRef.Key]
		case r.FieldRef != nil && r.FieldRef.FieldPath == "metadata.name":
			v = podName
		default:
			t.Fatalf("%s: env %s: the test resolves only values, ConfigMap or Secret keys and the pod's name", at, e.Name)
		}
		t.Setenv(e.Name, v)
	}
	opts, err := server.ProcessConfigFile(rootedConf)
	if err != nil {
		t.Fatalf("%s: nats-server %s cannot load %s: %s", at, server.VERSION, confPath, strings.ReplaceAll(err.Error(), filepath.ToSlash(root), ""))
	}
	return opts, root, string(text)
}

// TestNATSConfig parses the NATS server's config (ConfigMap
// "dbsync-nats-config", as mounted, with the environment the container
// gets) with the nats-server module the image's tag names, and checks it:
// TLS for every client, nkey users and no anonymous access, monitoring on
// loopback only, no other listener, JetStream storage bounded below the
// volume and above the producer's stream.
func TestNATSConfig(t *testing.T) {
	b, _ := exampleApp(t)
	opts, root, _ := natsPod(t, b)
	s, c := podContainer(t, b, natsSet, natsContainer)

	if opts.TLSConfig == nil {
		t.Errorf("nats.conf: no tls block: clients would connect in plain text")
	}
	if opts.AllowNonTLS {
		t.Errorf("nats.conf: allow_non_tls is true; every client must use TLS")
	}
	if len(opts.Nkeys) == 0 && len(opts.Users) == 0 {
		t.Errorf("nats.conf: no authorization users: anyone reaching the port may publish")
	}
	if opts.NoAuthUser != "" || opts.Username != "" || opts.Authorization != "" {
		t.Errorf("nats.conf: no_auth_user, a single user or a token is set; use the users with permissions")
	}
	for _, u := range opts.Users {
		if u.Permissions == nil {
			t.Errorf("nats.conf: user %q has no permissions (it may do anything)", u.Username)
		}
	}
	for _, u := range opts.Nkeys {
		if u.Permissions == nil || u.Permissions.Publish == nil || len(u.Permissions.Publish.Allow) == 0 {
			t.Errorf("nats.conf: nkey user %s has no publish allow list (it may publish anywhere)", u.Nkey)
		}
	}
	if ip := net.ParseIP(opts.HTTPHost); opts.HTTPPort != 0 && opts.HTTPHost != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Errorf("nats.conf: monitoring listens on %s:%d; keep it on 127.0.0.1 (it is not for clients)", opts.HTTPHost, opts.HTTPPort)
	}
	if opts.HTTPSPort != 0 || opts.Cluster.Port != 0 || opts.LeafNode.Port != 0 || opts.Websocket.Port != 0 || opts.MQTT.Port != 0 || opts.Gateway.Port != 0 {
		t.Errorf("nats.conf: a listener besides the client port (https %d, cluster %d, leafnodes %d, websocket %d, mqtt %d, gateway %d)",
			opts.HTTPSPort, opts.Cluster.Port, opts.LeafNode.Port, opts.Websocket.Port, opts.MQTT.Port, opts.Gateway.Port)
	}
	if cp, ok := namedPort(c, "client"); !ok || int(cp.ContainerPort) != opts.Port {
		t.Errorf("nats.conf: port %d is not the container port \"client\" (%s)", opts.Port, describePorts(c))
	}
	for _, p := range c.Ports {
		if int(p.ContainerPort) == opts.HTTPPort {
			t.Errorf("StatefulSet %q: container port %d is the monitoring port; do not declare it", s.Name, p.ContainerPort)
		}
	}

	// JetStream: on, stored on the volume claim, bounded below its size.
	if !opts.JetStream {
		t.Fatalf("nats.conf: JetStream is off")
	}
	storeDir := fromRoot(opts.StoreDir, root)
	m, ok := mountOf(c, storeDir)
	var claim *corev1.PersistentVolumeClaim
	for i := range s.Spec.VolumeClaimTemplates {
		if ok && s.Spec.VolumeClaimTemplates[i].Name == m.Name {
			claim = &s.Spec.VolumeClaimTemplates[i]
		}
	}
	if claim == nil {
		t.Fatalf("nats.conf: jetstream store_dir %q is not on a volumeClaimTemplate of StatefulSet %q (mounts: %s)", storeDir, s.Name, describeMounts(c))
	}
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if opts.JetStreamMaxStore <= 0 || opts.JetStreamMaxStore > size.Value()*9/10 {
		t.Errorf("nats.conf: jetstream max_file_store is %d; set it to at most 90%% of the volume (%s = %d bytes) so the server refuses writes before the disk is full", opts.JetStreamMaxStore, size.String(), size.Value())
	}
	_, producer := podContainer(t, b, producerSet, producerContainer)
	cfg := producerConfig(t, b, producer)
	if cfg.JetStream.MaxBytes <= 0 || cfg.JetStream.MaxBytes > opts.JetStreamMaxStore {
		t.Errorf("the producer's JetStream.MaxBytes %d is not within the server's max_file_store %d: the stream would not be the one refusing new changes when full", cfg.JetStream.MaxBytes, opts.JetStreamMaxStore)
	}
	if opts.MaxPayload != int32(config.DefaultNATSMaxPayload) && opts.MaxPayload != 0 {
		t.Logf("nats.conf: max_payload %d (the producer reads it from the server)", opts.MaxPayload)
	}

	// The image is the nats-server version this test parsed the file with.
	for _, im := range b.Bases[0].Kustomization.Images {
		if im.Name == "nats" && !strings.HasPrefix(im.NewTag, server.VERSION+"-") && im.NewTag != server.VERSION {
			t.Errorf("%s/kustomization.yaml: image nats:%s, but the tests check nats.conf with nats-server %s (go.mod): keep them the same version", b.Bases[0].Dir, im.NewTag, server.VERSION)
		}
	}
}

func namedPort(c corev1.Container, name string) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

// producerConfig loads the producer's config.json as the producer does in
// the pod (see checkWiring), its file paths moved under a temporary root
// holding the mounted files.
func producerConfig(t *testing.T, b *base, c corev1.Container) *config.Config {
	t.Helper()
	return producerConfigEnv(t, b, c, nil)
}

// producerConfigEnv is producerConfig with the environment variables env
// set (config.EnvOverrides), as an operator would set them on the
// container.
func producerConfigEnv(t *testing.T, b *base, c corev1.Container, env map[string]string) *config.Config {
	t.Helper()
	s := b.StatefulSets[producerSet].Obj
	cfgPath, ok := flagValue(c.Args, "config")
	if !ok {
		t.Fatalf("the producer's args pass no -config")
	}
	root := t.TempDir()
	for _, p := range podFS(b, s, c, root) {
		t.Error(p)
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(cfgPath)))
	if err != nil {
		t.Fatalf("-config %s: %v", cfgPath, err)
	}
	rooted, _ := rootPaths(string(data), c, root)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Parse([]byte(rooted), path.Base(cfgPath), lookup)
	if err != nil {
		t.Fatalf("the producer's config: %v", err)
	}
	return cfg
}

// violations collects a connection's asynchronous errors (permission
// violations).
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

// waitFor waits up to 2s for a violation naming subject.
func (v *violations) waitFor(t *testing.T, who, what, subject string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, e := range v.errs {
			if strings.Contains(e, "ermissions violation") && strings.Contains(e, subject) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t.Errorf("%s could %s: no permissions violation for %q (errors: %q)", who, what, subject, v.errs)
}

// serverLog is a nats-server logger keeping every line.
type serverLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *serverLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
}
func (l *serverLog) Noticef(format string, v ...any) { l.add(format, v...) }
func (l *serverLog) Warnf(format string, v ...any)   { l.add(format, v...) }
func (l *serverLog) Fatalf(format string, v ...any)  { l.add(format, v...) }
func (l *serverLog) Errorf(format string, v ...any)  { l.add(format, v...) }
func (l *serverLog) Debugf(format string, v ...any)  { l.add(format, v...) }
func (l *serverLog) Tracef(format string, v ...any)  { l.add(format, v...) }

func (l *serverLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestNATSPermissions runs a real NATS server from the deployment's
// config (TLS certificate and users as mounted, on a free port) and runs
// dbsync's own code against it: the producer's queue, opened by
// wiring.OpenQueue from its config.json as loaded in the pod (its nkey seed
// and CA as mounted, JetStream.URL pointed at the test server), creates
// its stream and publishes the envelopes of a table, is opened again on
// the existing stream, reads its newest message back and passes the
// doctor's broker probe; the SDK (pkg/client), with the consumer Secret's
// seed and the CA, consumes every change and acknowledges it, and resumes
// after the last acknowledged one. What each user must not do fails with a
// permissions violation: the consumer publishing to the producer's
// subjects or changing the stream, the producer deleting, purging or
// updating it. Plain-text and anonymous connections are refused, and no
// secret reaches the server's or the programs' logs.
func TestNATSPermissions(t *testing.T) {
	b, sec := exampleApp(t)
	opts, _, _ := natsPod(t, b)
	_, producer := podContainer(t, b, producerSet, producerContainer)

	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server from nats.conf: %v", err)
	}
	log := &serverLog{}
	srv.SetLoggerV2(log, true, false, false)
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server from nats.conf did not start within 10s:\n%s", log.text())
	}
	addr := srv.Addr().(*net.TCPAddr)
	tlsURL := fmt.Sprintf("tls://127.0.0.1:%d", addr.Port)

	// Neither plain text nor anonymous connections.
	if nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", addr.Port), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Errorf("a plain-text connection without credentials was accepted")
	}
	if nc, err := nats.Connect(tlsURL, nats.RootCAs(sec.PKI.CA), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Errorf("a TLS connection without credentials was accepted")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("a TLS connection without credentials: %v, want an authorization violation", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// step bounds one request: one a permission denies gets no answer.
	step := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		t.Cleanup(cancel)
		return c
	}

	// The producer: its config.json as loaded in the pod, the broker's
	// address overridden the way an operator would (DBSYNC_JETSTREAM_URL).
	// The test certificate names 127.0.0.1, the host of that URL, and is
	// signed by the CA the Secret mounts at JetStream.TLS.CA.
	cfg := producerConfigEnv(t, b, producer, map[string]string{"DBSYNC_JETSTREAM_URL": tlsURL})
	if mode := cfg.JetStream.TLS.Effective(true); mode != config.TLSVerifyIdentity {
		t.Fatalf("the producer's JetStream.TLS is %q, want %q", mode, config.TLSVerifyIdentity)
	}
	stream := cfg.JetStream.Stream
	var plog bytes.Buffer
	plogger := logrus.New()
	plogger.SetOutput(&plog)
	plogger.SetLevel(logrus.DebugLevel)
	plogger.SetFormatter(&logrus.JSONFormatter{})

	// First start: the stream does not exist; the producer creates it and
	// publishes a transaction of shop.orders (Publish) and another one with
	// a dead-letter marker for a change it skipped (Send, then Wait).
	q, err := wiring.OpenQueue(ctx, cfg, plogger)
	if err != nil {
		t.Fatalf("producer: wiring.OpenQueue against nats.conf (creating stream %s as the producer user): %v\nproducer log:\n%s", stream, err, plog.String())
	}
	orders := newOrderChanges(cfg, "shop", "orders")
	first := orders.next(3)
	if err := q.Publish(ctx, first); err != nil {
		t.Fatalf("producer: Publish of %d changes of shop.orders: %v", len(first), err)
	}
	second := orders.next(2)
	second = append(second, orders.marker(t, cfg.DeadLetter()))
	if ap, ok := q.(mq.AsyncPublisher); !ok {
		t.Errorf("producer: the JetStream queue is no mq.AsyncPublisher")
	} else if p, err := ap.Send(ctx, second); err != nil {
		t.Fatalf("producer: Send: %v", err)
	} else if err := p.Wait(ctx); err != nil {
		t.Fatalf("producer: Wait for the acknowledgements (with a marker on the dead letter subject %s): %v", cfg.DeadLetter(), err)
	}
	if p, ok := q.(mq.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			t.Errorf("producer: Ping: %v", err)
		}
	}
	if err := q.Close(); err != nil {
		t.Errorf("producer: Close: %v", err)
	}

	// Restart: the stream exists; the producer checks it, reads its newest
	// message (a first start refuses a stream holding changes, a later one
	// skips what is held) and goes on.
	q, err = wiring.OpenQueue(ctx, cfg, plogger)
	if err != nil {
		t.Fatalf("producer: wiring.OpenQueue on the existing stream %s: %v", stream, err)
	}
	defer q.Close()
	if h, ok := q.(mq.HistoryReader); !ok {
		t.Errorf("producer: the JetStream queue is no mq.HistoryReader")
	} else if last, found, err := h.LastMessage(step()); err != nil || !found {
		t.Errorf("producer: LastMessage: found %v, %v; want the marker %s", found, err, second[len(second)-1].ID)
	} else if last.ID != second[len(second)-1].ID || last.Subject != cfg.DeadLetter() {
		t.Errorf("producer: LastMessage is %s on %s, want %s on %s", last.ID, last.Subject, second[len(second)-1].ID, cfg.DeadLetter())
	} else if _, err := envelope.SourceOf(last.Data); err != nil {
		t.Errorf("producer: the newest message is not one of its own: %v", err)
	}
	orders.restart()
	third := orders.next(2)
	if err := q.Publish(ctx, third); err != nil {
		t.Fatalf("producer: Publish after a restart: %v", err)
	}
	published := append(append(append([]mq.Message(nil), first...), second[:len(second)-1]...), third...)
	stored := uint64(len(first) + len(second) + len(third))

	// The doctor's probe, with the producer's credentials: it reads the
	// account and the stream.
	if probe, err := wiring.ProbeBroker(step(), cfg); err != nil {
		t.Errorf("producer: wiring.ProbeBroker: %v", err)
	} else if probe.Warning != "" {
		t.Errorf("producer: wiring.ProbeBroker: %s (%s)", probe.Warning, probe.Fix)
	}
	if state := streamState(t, srv, stream); state.Msgs != stored {
		t.Errorf("stream %s holds %d messages, want the %d the producer published", stream, state.Msgs, stored)
	}

	// What the producer never does is denied (a connection with the same
	// seed and CA).
	pv := &violations{}
	pnc := connect(t, tlsURL, cfg.JetStream.TLS.CA, cfg.JetStream.Auth.NKeySeedFile, pv)
	pjs, err := jetstream.New(pnc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pjs.Stream(step(), stream)
	if err != nil {
		t.Fatalf("producer: stream info: %v", err)
	}
	scfg := st.CachedInfo().Config

	denied := func(who string, v *violations, what, apiSubject string, call func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := call(ctx); err == nil {
			t.Errorf("%s could %s", who, what)
			return
		}
		v.waitFor(t, who, what, apiSubject)
	}
	denied("the producer", pv, "delete its stream", "$JS.API.STREAM.DELETE."+stream, func(ctx context.Context) error {
		return pjs.DeleteStream(ctx, stream)
	})
	denied("the producer", pv, "purge its stream", "$JS.API.STREAM.PURGE."+stream, func(ctx context.Context) error {
		return st.Purge(ctx)
	})
	denied("the producer", pv, "update its stream (it never does: an existing stream is checked, not changed)", "$JS.API.STREAM.UPDATE."+stream, func(ctx context.Context) error {
		upd := scfg
		upd.MaxAge = time.Hour
		_, err := pjs.UpdateStream(ctx, upd)
		return err
	})
	denied("the producer", pv, "create another stream", "$JS.API.STREAM.CREATE.OTHER", func(ctx context.Context) error {
		_, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
		return err
	})
	if _, err := pnc.SubscribeSync(cfg.ProName + ">"); err == nil {
		pnc.Flush()
		pv.waitFor(t, "the producer", "subscribe to the row changes", cfg.ProName+">")
	}

	// A consumer application: the SDK with the seed of the consumer Secret
	// and the CA, as deploy/README.md tells consumers to mount them.
	dir := t.TempDir()
	seed := filepath.Join(dir, "nats.nk")
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(seed, []byte(b.Secrets["dbsync-consumer"].Data["nats.nk"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, []byte(b.Secrets["dbsync-nats-tls"].Data["ca.crt"]), 0o600); err != nil {
		t.Fatal(err)
	}
	var clog bytes.Buffer
	clogger := logrus.New()
	clogger.SetOutput(&clog)
	clogger.SetLevel(logrus.DebugLevel)
	clogger.SetFormatter(&logrus.JSONFormatter{})
	var cerrs errorList
	ccfg := client.Config{
		Broker: client.BrokerJetStream, ClientID: "shop-app", Host: tlsURL,
		NKeySeedFile: seed, TLS: client.TLS{CA: ca},
		Stream: stream, Prefix: cfg.ProName, StartAt: client.StartAtFirst,
		Logger: clogger, OnError: cerrs.add,
	}
	subject := cfg.ProName + "shop.orders"
	consume(t, srv, ccfg, published, subject)
	checkAcked(t, consumerOn(t, srv, stream, subject), streamState(t, srv, stream).LastSeq)

	// The same application restarted, with another AckWait: the SDK
	// updates its durable consumer and resumes after the last acknowledged
	// change, so it gets only what was published since.
	fourth := orders.next(2)
	if err := q.Publish(ctx, fourth); err != nil {
		t.Fatalf("producer: Publish: %v", err)
	}
	stored += uint64(len(fourth))
	ccfg.AckWait = 3 * time.Second
	consume(t, srv, ccfg, fourth, subject)
	cons := consumerOn(t, srv, stream, subject)
	if cons.Config.AckWait != ccfg.AckWait {
		t.Errorf("the durable consumer's AckWait is %v after a restart with AckWait %v: the SDK could not update it", cons.Config.AckWait, ccfg.AckWait)
	}
	checkAcked(t, cons, streamState(t, srv, stream).LastSeq)
	for _, e := range cerrs.list() {
		t.Errorf("consumer: OnError: %s", e)
	}
	for _, l := range logLines(clog.String(), "warning", "error") {
		t.Errorf("consumer: the SDK logged: %s", l)
	}
	for _, l := range logLines(plog.String(), "warning", "error") {
		t.Errorf("producer: the queue logged: %s", l)
	}

	// What a consumer may not do, on a connection with its credentials.
	cv := &violations{}
	cnc := connect(t, tlsURL, ca, seed, cv)
	cjs, err := jetstream.New(cnc)
	if err != nil {
		t.Fatal(err)
	}
	// Read-only requests nats.conf grants besides the SDK's (for the nats
	// CLI).
	if _, err := cjs.AccountInfo(step()); err != nil {
		t.Errorf("consumer: JetStream account info: %v", err)
	}
	if _, err := cjs.Stream(step(), stream); err != nil {
		t.Errorf("consumer: stream info: %v", err)
	}
	// The SDK's dead letter subject is allowed (its stream is the
	// operator's). Violations are reported in order, so once the one of a
	// denied marker publish is in, one for the dead letter would be too.
	poison := "dbsync_poison.shop-app"
	if err := cnc.Publish(poison, []byte(`{}`)); err != nil {
		t.Errorf("consumer: publish to %s: %v", poison, err)
	}
	marker := cfg.ProName + "marker.denied"
	if err := cnc.Publish(marker, []byte(`{}`)); err == nil {
		cnc.Flush()
	}
	cv.waitFor(t, "a consumer", "publish to the producer's subjects", marker)
	cv.mu.Lock()
	for _, e := range cv.errs {
		if strings.Contains(e, poison) {
			t.Errorf("a consumer may not publish to its dead letter subject %s: %s", poison, e)
		}
	}
	cv.mu.Unlock()

	denied("a consumer", cv, "publish to the producer's subjects through JetStream", subject, func(ctx context.Context) error {
		_, err := cjs.Publish(ctx, subject, []byte(`{"forged":true}`))
		return err
	})
	if err := cnc.Publish(subject, []byte(`{"forged":true}`)); err == nil {
		cnc.Flush()
	}
	denied("a consumer", cv, "delete the stream", "$JS.API.STREAM.DELETE."+scfg.Name, func(ctx context.Context) error {
		return cjs.DeleteStream(ctx, scfg.Name)
	})
	denied("a consumer", cv, "update the stream", "$JS.API.STREAM.UPDATE."+scfg.Name, func(ctx context.Context) error {
		_, err := cjs.UpdateStream(ctx, scfg)
		return err
	})
	denied("a consumer", cv, "create a stream", "$JS.API.STREAM.CREATE.EVIL", func(ctx context.Context) error {
		_, err := cjs.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
		return err
	})
	denied("a consumer", cv, "purge the stream", "$JS.API.STREAM.PURGE."+scfg.Name, func(ctx context.Context) error {
		s, err := cjs.Stream(ctx, scfg.Name)
		if err != nil {
			return err
		}
		return s.Purge(ctx)
	})
	denied("a consumer", cv, "delete a durable consumer", "$JS.API.CONSUMER.DELETE."+scfg.Name+"."+cons.Name, func(ctx context.Context) error {
		return cjs.DeleteConsumer(ctx, scfg.Name, cons.Name)
	})
	if state := streamState(t, srv, stream); state.Msgs != stored {
		t.Errorf("the stream holds %d messages after the consumer's attempts, want %d: a consumer published row changes", state.Msgs, stored)
	}

	// Nothing secret in what the server, the producer or the SDK logged.
	for who, text := range map[string]string{"the NATS server's log": log.text(), "the producer's log": plog.String(), "the SDK's log": clog.String()} {
		for name, v := range map[string]string{"producer seed": sec.ProducerSeed, "consumer seed": sec.ConsumerSeed, "MySQL password": sec.MysqlPassword} {
			if strings.Contains(text, v) {
				t.Errorf("%s holds the %s", who, name)
			}
		}
	}
}

// connect opens a TLS connection trusting ca, authenticating with the
// nkey seed file, and collecting asynchronous errors in v.
func connect(t *testing.T, url, ca, seedFile string, v *violations) *nats.Conn {
	t.Helper()
	nkey, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatalf("nkey seed %s: %v", seedFile, err)
	}
	nc, err := nats.Connect(url, nats.RootCAs(ca), nkey, nats.MaxReconnects(0), nats.ErrorHandler(v.handler))
	if err != nil {
		t.Fatalf("connect to %s with the seed %s and CA %s: %v", url, path.Base(seedFile), path.Base(ca), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// order is a row of shop.orders as a consumer application declares it.
type order struct {
	ID   int64
	Item string
}

// orderChanges makes the envelopes the producer publishes for the inserts
// into a table: consecutive binlog positions, each naming the change
// before it (Prev) within a producer run.
type orderChanges struct {
	cfg       *config.Config
	db, table string
	pos       uint32
	prev      string
}

func newOrderChanges(cfg *config.Config, db, table string) *orderChanges {
	return &orderChanges{cfg: cfg, db: db, table: table, pos: 4}
}

func (o *orderChanges) source() envelope.Source {
	return envelope.Source{Name: "dbsync-test", ServerID: uint32(o.cfg.Mysql.ServerID), File: "mysql-bin.000001", Pos: o.pos,
		TS: time.Now().UTC().Truncate(time.Second)}
}

// next returns n inserts, one rows event each.
func (o *orderChanges) next(n int) []mq.Message {
	var out []mq.Message
	for range n {
		o.pos += 100
		id := fmt.Sprintf("mysql-bin.000001:%d:0", o.pos)
		env := envelope.Envelope{V: envelope.Version, ID: id, Source: o.source(), Prev: o.prev,
			DB: o.db, Table: o.table, Type: envelope.TypeInsert, PK: []string{"id"},
			After: map[string]json.RawMessage{"id": json.RawMessage(fmt.Sprint(o.pos)), "item": json.RawMessage(`"item-` + id + `"`)}}
		data, err := json.Marshal(env)
		if err != nil {
			panic(err)
		}
		out = append(out, mq.Message{Subject: o.cfg.ProName + o.db + "." + o.table, ID: id, Data: data})
		o.prev = id
	}
	return out
}

// marker returns the dead-letter marker of an insert the producer skipped.
func (o *orderChanges) marker(t *testing.T, subject string) mq.Message {
	t.Helper()
	o.pos += 100
	id := fmt.Sprintf("mysql-bin.000001:%d:0", o.pos)
	u := envelope.Unpublishable{V: envelope.Version, Kind: envelope.KindUnpublishable, ID: id, Source: o.source(),
		DB: o.db, Table: o.table, Type: envelope.TypeInsert, Subject: o.cfg.ProName + o.db + "." + o.table,
		Reason: "larger than the broker accepts", Size: 2 << 20}
	data, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	return mq.Message{Subject: subject, ID: id, Data: data}
}

// restart starts a new producer run: the next change names no Prev.
func (o *orderChanges) restart() { o.prev = "" }

// consume runs the SDK with cfg, subscribes to shop.orders and waits for
// want, in order; it closes the client after.
func consume(t *testing.T, srv *server.Server, cfg client.Config, want []mq.Message, subject string) {
	t.Helper()
	c, err := client.NewClient(cfg)
	if err != nil {
		t.Fatalf("consumer: client.NewClient with the consumer's nkey seed and CA: %v", err)
	}
	defer c.Close()
	got := make(chan client.Change[order], len(want)+16)
	sub, err := client.Subscribe(c, "shop", "orders", func(_ context.Context, ch client.Change[order]) error {
		got <- ch
		return nil
	})
	if err != nil {
		t.Fatalf("consumer: client.Subscribe to shop.orders: %v", err)
	}
	if sub.Subject() != subject {
		t.Errorf("consumer: subscribed to %s, the producer publishes %s", sub.Subject(), subject)
	}
	timeout := time.After(20 * time.Second)
	for i, m := range want {
		select {
		case ch := <-got:
			if ch.ID != m.ID || ch.After == nil || ch.After.Item != "item-"+m.ID {
				t.Fatalf("consumer: change %d is %s (%+v), want %s", i, ch.ID, ch.After, m.ID)
			}
		case <-timeout:
			t.Fatalf("consumer: change %d (%s) of %d never arrived (subscription error: %v; %s)", i, m.ID, len(want), sub.Err(), describeConsumers(t, srv, cfg.Stream, subject))
		}
	}
	// Nothing more: no change comes twice, no marker reaches the table.
	select {
	case ch := <-got:
		t.Errorf("consumer: an unexpected change %s after the %d published", ch.ID, len(want))
	case <-time.After(300 * time.Millisecond):
	}
	if err := c.Close(); err != nil {
		t.Errorf("consumer: Close: %v", err)
	}
}

// streamState is the state of stream as the server holds it (read
// through its monitoring, not a client's permissions).
func streamState(t *testing.T, srv *server.Server, stream string) server.StreamState {
	t.Helper()
	for _, sd := range jsz(t, srv) {
		if sd.Name == stream {
			return sd.State
		}
	}
	t.Fatalf("the server has no stream %s", stream)
	return server.StreamState{}
}

// consumerOn returns the durable consumer of stream filtering subject, as
// the server holds it.
func consumerOn(t *testing.T, srv *server.Server, stream, subject string) *server.ConsumerInfo {
	t.Helper()
	var found []*server.ConsumerInfo
	for _, sd := range jsz(t, srv) {
		for _, ci := range sd.Consumer {
			if sd.Name == stream && ci.Config != nil && ci.Config.FilterSubject == subject {
				found = append(found, ci)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d durable consumers on stream %s filter %s, want the SDK's one", len(found), stream, subject)
	}
	return found[0]
}

func jsz(t *testing.T, srv *server.Server) []server.StreamDetail {
	t.Helper()
	info, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true, Config: true})
	if err != nil {
		t.Fatalf("nats-server Jsz: %v", err)
	}
	var out []server.StreamDetail
	for _, a := range info.AccountDetails {
		out = append(out, a.Streams...)
	}
	return out
}

// describeConsumers says what the server holds of the consumers of
// stream filtering subject: how far each got and what awaits an ack.
func describeConsumers(t *testing.T, srv *server.Server, stream, subject string) string {
	t.Helper()
	var parts []string
	for _, sd := range jsz(t, srv) {
		for _, ci := range sd.Consumer {
			if sd.Name == stream && ci.Config != nil && ci.Config.FilterSubject == subject {
				parts = append(parts, fmt.Sprintf("durable consumer %s: delivered up to stream sequence %d, acknowledged up to %d, %d awaiting an ack, %d redelivered",
					ci.Name, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumAckPending, ci.NumRedelivered))
			}
		}
	}
	if len(parts) == 0 {
		return "the server holds no durable consumer on " + subject
	}
	return "the server holds " + strings.Join(parts, "; ")
}

// checkAcked checks that the server holds every message of cons up to
// stream sequence last as acknowledged: the SDK's acks reached it.
func checkAcked(t *testing.T, cons *server.ConsumerInfo, last uint64) {
	t.Helper()
	if cons.AckFloor.Stream != last || cons.NumAckPending != 0 || cons.NumPending != 0 || cons.NumRedelivered != 0 {
		t.Errorf("durable consumer %s: acknowledged up to stream sequence %d (want %d), %d awaiting an ack, %d not delivered, %d redelivered: "+
			"the SDK's acknowledgements did not reach the server (nats.conf: the consumer may publish $JS.ACK.<stream>.>)",
			cons.Name, cons.AckFloor.Stream, last, cons.NumAckPending, cons.NumPending, cons.NumRedelivered)
	}
}

// errorList collects the errors the SDK reports (client.Config.OnError).
type errorList struct {
	mu   sync.Mutex
	errs []string
}

func (l *errorList) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err.Error())
}

func (l *errorList) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// logLines returns the lines of a JSON logrus log at one of levels.
func logLines(text string, levels ...string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		var e struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && slices.Contains(levels, e.Level) {
			out = append(out, line)
		}
	}
	return out
}
