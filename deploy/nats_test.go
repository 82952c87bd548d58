package deploy

import (
	"context"
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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/dbsync/dbsync/pkg/config"
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
	s, c := podContainer(t, b, natsSet, natsContainer)
	at := fmt.Sprintf("StatefulSet %q, container %q", s.Name, c.Name)
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
		default:
			t.Fatalf("%s: env %s: the test resolves only values and ConfigMap or Secret keys", at, e.Name)
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
	cfg, err := config.Parse([]byte(rooted), path.Base(cfgPath), nil)
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
// config (TLS certificate and users as mounted, on a free port) and
// connects as the producer, with the settings of its config.json, and as
// a consumer, with the consumer Secret's seed: the producer creates its
// stream and publishes row changes the way pkg/mq does; the consumer pulls
// and acknowledges them the way pkg/client does. What each must not do
// fails with a permissions violation: the consumer publishing to the
// producer's subjects or changing the stream, the producer deleting it.
// Plain-text and anonymous connections are refused, and no secret reaches
// the server's log.
func TestNATSPermissions(t *testing.T) {
	b, sec := exampleApp(t)
	opts, _, _ := natsPod(t, b)
	_, producer := podContainer(t, b, producerSet, producerContainer)
	cfg := producerConfig(t, b, producer)

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

	// The producer, with the files its config names.
	pv := &violations{}
	pnc := connect(t, tlsURL, cfg.JetStream.TLS.CA, cfg.JetStream.Auth.NKeySeedFile, pv)
	pjs, err := jetstream.New(pnc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := pjs.AccountInfo(ctx); err != nil {
		t.Fatalf("producer: JetStream account info: %v", err)
	}
	if _, err := pjs.Stream(ctx, cfg.JetStream.Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("producer: stream info of the missing stream: %v, want ErrStreamNotFound", err)
	}
	scfg := jetstream.StreamConfig{
		Name: cfg.JetStream.Stream, Subjects: cfg.StreamSubjects(), Retention: jetstream.LimitsPolicy,
		Discard: jetstream.DiscardNew, MaxAge: cfg.JetStream.MaxAge.Duration(), MaxBytes: cfg.JetStream.MaxBytes,
		Storage: jetstream.FileStorage, Replicas: cfg.JetStream.Replicas, Duplicates: cfg.JetStream.DuplicateWindow.Duration(),
	}
	st, err := pjs.CreateStream(ctx, scfg)
	if err != nil {
		t.Fatalf("producer: create stream %s: %v", scfg.Name, err)
	}
	if _, err := pjs.UpdateStream(ctx, scfg); err != nil {
		t.Errorf("producer: update stream %s: %v", scfg.Name, err)
	}
	subject := cfg.ProName + "shop.orders"
	for i, id := range []string{"mysql-bin.000001:4:0", "mysql-bin.000001:4:1"} {
		m := nats.NewMsg(subject)
		m.Data = []byte(fmt.Sprintf(`{"v":1,"id":%q}`, id))
		m.Header.Set(jetstream.MsgIDHeader, id)
		m.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(i))
		f, err := pjs.PublishMsgAsync(m)
		if err != nil {
			t.Fatalf("producer: publish to %s: %v", subject, err)
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("producer: publish to %s: %v", subject, err)
		case <-ctx.Done():
			t.Fatalf("producer: publish to %s: no ack", subject)
		}
	}
	if _, err := pjs.Publish(ctx, cfg.DeadLetter(), []byte(`{}`)); err != nil {
		t.Errorf("producer: publish to the dead letter subject %s: %v", cfg.DeadLetter(), err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("producer: stream info: %v", err)
	}
	if _, err := st.GetMsg(ctx, info.State.LastSeq); err != nil {
		t.Errorf("producer: read the last message (pkg/mq LastMessage): %v", err)
	}
	stored := info.State.Msgs

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
	denied("the producer", pv, "delete its stream", "$JS.API.STREAM.DELETE."+scfg.Name, func(ctx context.Context) error {
		return pjs.DeleteStream(ctx, scfg.Name)
	})
	denied("the producer", pv, "purge its stream", "$JS.API.STREAM.PURGE."+scfg.Name, func(ctx context.Context) error {
		return st.Purge(ctx)
	})
	denied("the producer", pv, "create another stream", "$JS.API.STREAM.CREATE.OTHER", func(ctx context.Context) error {
		_, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
		return err
	})
	if _, err := pnc.SubscribeSync(cfg.ProName + ">"); err == nil {
		pnc.Flush()
		pv.waitFor(t, "the producer", "subscribe to the row changes", cfg.ProName+">")
	}

	// A consumer, with the seed of the consumer Secret and the CA.
	dir := t.TempDir()
	seed := filepath.Join(dir, "nats.nk")
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(seed, []byte(b.Secrets["dbsync-consumer"].Data["nats.nk"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, []byte(b.Secrets["dbsync-nats-tls"].Data["ca.crt"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cv := &violations{}
	cnc := connect(t, tlsURL, ca, seed, cv)
	cjs, err := jetstream.New(cnc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cjs.AccountInfo(ctx); err != nil {
		t.Errorf("consumer: JetStream account info: %v", err)
	}
	if _, err := cjs.Stream(ctx, scfg.Name); err != nil {
		t.Errorf("consumer: stream info: %v", err)
	}
	durable := "shop-orders-app"
	if _, err := cjs.Consumer(ctx, scfg.Name, durable); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("consumer: info of a missing durable consumer: %v, want ErrConsumerNotFound", err)
	}
	ccfg := jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: 30 * time.Second, MaxAckPending: 1,
	}
	cons, err := cjs.CreateConsumer(ctx, scfg.Name, ccfg)
	if err != nil {
		t.Fatalf("consumer: create durable consumer %s: %v", durable, err)
	}
	ccfg.AckWait = 20 * time.Second
	if _, err := cjs.UpdateConsumer(ctx, scfg.Name, ccfg); err != nil {
		t.Errorf("consumer: update durable consumer %s: %v", durable, err)
	}
	if _, err := cjs.Consumer(ctx, scfg.Name, durable); err != nil {
		t.Errorf("consumer: info of durable consumer %s: %v", durable, err)
	}
	for range 2 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("consumer: fetch: %v", err)
		}
		var got []jetstream.Msg
		for m := range batch.Messages() {
			got = append(got, m)
		}
		if batch.Error() != nil || len(got) != 1 {
			t.Fatalf("consumer: fetch returned %d message(s), error %v; want 1", len(got), batch.Error())
		}
		if err := got[0].InProgress(); err != nil {
			t.Errorf("consumer: in progress: %v", err)
		}
		if err := got[0].DoubleAck(ctx); err != nil {
			t.Errorf("consumer: acknowledge (with confirmation): %v", err)
		}
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
	denied("a consumer", cv, "delete a durable consumer", "$JS.API.CONSUMER.DELETE."+scfg.Name+"."+durable, func(ctx context.Context) error {
		return cjs.DeleteConsumer(ctx, scfg.Name, durable)
	})
	if info, err := st.Info(ctx); err != nil {
		t.Errorf("producer: stream info: %v", err)
	} else if info.State.Msgs != stored {
		t.Errorf("the stream holds %d messages after the consumer's attempts, want %d: a consumer published row changes", info.State.Msgs, stored)
	}

	// Nothing secret in what the server logged.
	logText := log.text()
	for name, v := range map[string]string{"producer seed": sec.ProducerSeed, "consumer seed": sec.ConsumerSeed, "MySQL password": sec.MysqlPassword} {
		if strings.Contains(logText, v) {
			t.Errorf("the NATS server's log holds the %s", name)
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
