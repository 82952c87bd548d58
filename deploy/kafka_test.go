package deploy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/wiring"
)

// kafkaDeleted are the base's NATS objects the kafka overlay deletes.
var kafkaDeleted = []string{
	"ConfigMap/dbsync-nats-config",
	"NetworkPolicy/dbsync-nats", "NetworkPolicy/dbsync-nats-clients",
	"Service/dbsync-nats", "Service/dbsync-nats-headless",
	"StatefulSet/dbsync-nats",
}

// TestKafkaDecodesStrictly loads the kafka overlay (its secret files
// filled in): its kustomization lists exactly the directory's files,
// every resource and patch decodes strictly into its Kubernetes type, it
// deletes exactly the base's NATS objects, patches the producer, replaces
// the config and generates the producer's Secret from secrets/ only.
func TestKafkaDecodesStrictly(t *testing.T) {
	dir, _ := kafkaDir(t)
	b, err := loadBase(filepath.Join(dir, kafkaOverlayDir))
	if err != nil {
		t.Fatal(err)
	}
	k := b.Kustomization
	if !slices.Contains(k.Resources, "../../base") {
		t.Errorf("%s/kustomization.yaml: resources %q, want ../../base among them", kafkaOverlayDir, k.Resources)
	}
	if k.Namespace != appNamespace {
		t.Errorf("%s/kustomization.yaml: namespace %q, want %q", kafkaOverlayDir, k.Namespace, appNamespace)
	}
	if got := keysOf(b.Deleted); !slices.Equal(got, kafkaDeleted) {
		t.Errorf("%s deletes %q, want the base's NATS objects %q", kafkaOverlayDir, got, kafkaDeleted)
	}
	if _, ok := b.Patched["StatefulSet/"+producerSet]; !ok {
		t.Errorf("%s: no patch of the producer's StatefulSet", kafkaOverlayDir)
	}
	if _, ok := b.NetworkPolicies["dbsync-producer-kafka"]; !ok {
		t.Errorf("%s: no NetworkPolicy \"dbsync-producer-kafka\"", kafkaOverlayDir)
	}
	for _, g := range k.ConfigMapGenerator {
		if g.Name != "dbsync-config" || g.Behavior != "replace" {
			t.Errorf("%s/kustomization.yaml: configMapGenerator %q (behavior %q); the overlay only replaces the base's dbsync-config", kafkaOverlayDir, g.Name, g.Behavior)
		}
	}
	if len(k.Images) > 0 {
		t.Errorf("%s/kustomization.yaml: images are set in %s/kustomization.yaml only", kafkaOverlayDir, baseDir)
	}
	for _, g := range k.SecretGenerator {
		if len(g.Literals) > 0 || (g.Options != nil && g.Options.DisableNameSuffixHash) {
			t.Errorf("%s/kustomization.yaml: secretGenerator %q has literals or no name hash", kafkaOverlayDir, g.Name)
		}
		for _, f := range g.Files {
			if _, p := generatorFile(f); !strings.HasPrefix(p, "secrets/") {
				t.Errorf("%s/kustomization.yaml: secretGenerator %q reads %q, outside secrets/ (the git-ignored directory)", kafkaOverlayDir, g.Name, p)
			}
		}
	}
}

// TestKafkaSecretFilesIgnored checks that git ignores every file the kafka
// overlay's generators read from secrets/, and not the overlay itself.
func TestKafkaSecretFilesIgnored(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is not on PATH: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(kafkaOverlayDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range k.SecretGenerator {
		for _, f := range g.Files {
			_, p := generatorFile(f)
			if !strings.HasPrefix(p, "secrets/") {
				continue // TestKafkaDecodesStrictly
			}
			n++
			if err := exec.Command(git, "check-ignore", "-q", filepath.Join(kafkaOverlayDir, p)).Run(); err != nil {
				t.Errorf("git does not ignore %s/%s (%v): a filled-in secret could be committed; add %s/secrets/.gitignore", kafkaOverlayDir, p, err, kafkaOverlayDir)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s/kustomization.yaml generates no Secret from secrets/", kafkaOverlayDir)
	}
	for _, f := range []string{"kustomization.yaml", "config.json", "networkpolicy.yaml"} {
		if exec.Command(git, "check-ignore", "-q", filepath.Join(kafkaOverlayDir, f)).Run() == nil {
			t.Errorf("git ignores %s/%s", kafkaOverlayDir, f)
		}
	}
}

// TestKafkaConfigIsTheBase checks that the overlay's config.json is the
// base's but for the broker: MQName and Kafka in place of JetStream.
func TestKafkaConfigIsTheBase(t *testing.T) {
	read := func(p string) map[string]any {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return m
	}
	base, kafka := read(filepath.Join(baseDir, "config.json")), read(filepath.Join(kafkaOverlayDir, "config.json"))
	delete(base, "JetStream")
	delete(base, "MQName")
	delete(kafka, "Kafka")
	delete(kafka, "MQName")
	for _, k := range keysOf(kafka) {
		if !reflect.DeepEqual(base[k], kafka[k]) {
			t.Errorf("%s/config.json: %s is %v, the base's is %v: keep it the base's (only the broker differs)", kafkaOverlayDir, k, kafka[k], base[k])
		}
	}
	for _, k := range keysOf(base) {
		if _, ok := kafka[k]; !ok {
			t.Errorf("%s/config.json: no %s, the base has %v", kafkaOverlayDir, k, base[k])
		}
	}
}

// TestKafkaWiring checks the kafka overlay as kustomize builds it:
// everything checkWiring checks (config.json loaded with pkg/config
// against the files as mounted: every file it names mounted from a
// Secret volume and every mounted secret file named; no password in it;
// the NetworkPolicies: the producer reaches the brokers' port, DNS and
// MySQL and nothing else, its operations port only from monitoring) and
// checkKafka (MQName kafka, SASL with a password file, a TLS CA, nothing
// of NATS left).
func TestKafkaWiring(t *testing.T) {
	b, _ := kafkaApp(t)
	for _, p := range checkWiring(b, loadDockerfile(t)) {
		t.Error(p)
	}
	_, producer := podContainer(t, b, producerSet, producerContainer)
	for _, p := range checkKafka(b, producerConfig(t, b, producer), producerConfigText(t, b)) {
		t.Error(p)
	}
}

// TestKafkaWiringCatchesMistakes breaks the built kafka overlay one way
// at a time and checks that checkWiring or checkKafka reports it.
func TestKafkaWiringCatchesMistakes(t *testing.T) {
	dir, _ := kafkaDir(t)
	// editConfig changes the producer's config.json as JSON.
	editConfig := func(t *testing.T, b *base, edit func(m map[string]any)) {
		for _, v := range b.StatefulSets[producerSet].Obj.Spec.Template.Spec.Volumes {
			if v.Name != "config" || v.ConfigMap == nil {
				continue
			}
			cm := b.ConfigMaps[v.ConfigMap.Name]
			var m map[string]any
			if err := json.Unmarshal([]byte(cm.Data["config.json"]), &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			out, err := json.MarshalIndent(m, "", "    ")
			if err != nil {
				t.Fatal(err)
			}
			cm.Data["config.json"] = string(out)
			return
		}
		t.Fatalf("test setup: the producer mounts no ConfigMap volume \"config\"")
	}
	kafka := func(m map[string]any) map[string]any { return m["Kafka"].(map[string]any) }
	sasl := func(m map[string]any) map[string]any { return kafka(m)["SASL"].(map[string]any) }
	np := func(t *testing.T, b *base) *networkingv1.NetworkPolicy {
		ls, ok := b.NetworkPolicies["dbsync-producer-kafka"]
		if !ok {
			t.Fatalf("test setup: no NetworkPolicy dbsync-producer-kafka")
		}
		return ls.Obj
	}
	producerPod := func(b *base) *corev1.PodSpec { return &b.StatefulSets[producerSet].Obj.Spec.Template.Spec }
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, b *base)
		want   string
	}{
		{"config still on NATS", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { m["MQName"] = "jetstream" })
		}, `MQName is "jetstream", want "kafka"`},
		{"JetStream section left", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { m["JetStream"] = map[string]any{"URL": "tls://dbsync-nats:4222"} })
		}, "a JetStream section is left"},
		{"password in the ConfigMap", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { delete(sasl(m), "PasswordFile"); sasl(m)["Password"] = "secret" })
		}, "Kafka.SASL.Password is set; keep secrets out of the ConfigMap"},
		{"password file in the ConfigMap volume", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { sasl(m)["PasswordFile"] = "/etc/dbsync/config.json" })
		}, `Kafka.SASL.PasswordFile "/etc/dbsync/config.json" is not in a Secret volume`},
		{"password file not mounted", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { sasl(m)["PasswordFile"] = "/run/kafka/password" })
		}, `"/run/kafka/password" is under no volumeMount`},
		{"password file not in the Secret", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { sasl(m)["PasswordFile"] = "/run/dbsync/secrets/kafka.password" })
		}, `Kafka.SASL.PasswordFile: cannot read "/run/dbsync/secrets/kafka.password"`},
		{"no SASL", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { delete(kafka(m), "SASL") })
		}, "Kafka.SASL.Mechanism is empty"},
		{"no TLS", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { delete(kafka(m), "TLS") })
		}, `Kafka.TLS is "disabled"`},
		{"TLS unverified", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) { kafka(m)["TLS"] = map[string]any{"Mode": "required"} })
		}, `Kafka.TLS is "required"`},
		{"NATS CA still mounted", func(t *testing.T, b *base) {
			pod := producerPod(b)
			var secretName string
			for _, v := range pod.Volumes {
				if v.Name == "secrets" {
					secretName = v.Secret.SecretName
				}
			}
			pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "nats-ca", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: secretName, DefaultMode: ptrTo(int32(0o440)), Items: []corev1.KeyToPath{{Key: "kafka-ca.crt", Path: "ca.crt"}}}}})
			c := &pod.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "nats-ca", MountPath: "/run/dbsync/nats-ca", ReadOnly: true})
		}, "puts /run/dbsync/nats-ca/ca.crt of Secret"},
		{"NATS client label left", func(t *testing.T, b *base) {
			b.StatefulSets[producerSet].Obj.Spec.Template.Labels["dbsync.io/nats-client"] = "true"
		}, "pod label dbsync.io/nats-client is left over from NATS"},
		{"NATS StatefulSet left", func(t *testing.T, b *base) {
			s := *b.StatefulSets[producerSet].Obj
			s.Name = "dbsync-nats"
			b.StatefulSets["dbsync-nats"] = located[appsv1.StatefulSet]{"test", &s}
		}, `StatefulSet "dbsync-nats" is left over from NATS`},
		{"two producers", func(t *testing.T, b *base) {
			*b.StatefulSets[producerSet].Obj.Spec.Replicas = 2
		}, "spec.replicas is 2"},
		{"no Kafka egress", func(t *testing.T, b *base) {
			p := np(t, b)
			p.Spec.Egress = p.Spec.Egress[1:]
		}, "cannot reach the Kafka broker kafka-0.kafka-headless.kafka.svc:9093"},
		{"brokers on another port", func(t *testing.T, b *base) {
			editConfig(t, b, func(m map[string]any) {
				kafka(m)["Brokers"] = []any{"kafka-0.kafka-headless.kafka.svc:9092"}
			})
		}, "cannot reach the Kafka broker kafka-0.kafka-headless.kafka.svc:9092 on port 9092"},
		{"Kafka egress to every port", func(t *testing.T, b *base) {
			np(t, b).Spec.Egress[0].Ports = nil
		}, "may connect to port 443 anywhere"},
		{"egress to 9092 too", func(t *testing.T, b *base) {
			p := np(t, b)
			p.Spec.Egress[0].Ports = append(p.Spec.Egress[0].Ports, networkingv1.NetworkPolicyPort{Port: ptrTo(intstrFromInt(9092))})
		}, "may connect to port 9092 anywhere"},
		{"no DNS", func(t *testing.T, b *base) {
			p := np(t, b)
			p.Spec.Egress = p.Spec.Egress[:1]
		}, "cannot reach the cluster DNS"},
		{"operations port open", func(t *testing.T, b *base) {
			b.NetworkPolicies["dbsync-producer"].Obj.Spec.Ingress[0].From = nil
		}, "operations port 8080 is reachable from a pod of its own namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := kustomizeBuild(t, filepath.Join(dir, kafkaOverlayDir)).asBase()
			tc.mutate(t, b)
			problems := checkWiring(b, nil)
			_, producer := podContainer(t, b, producerSet, producerContainer)
			text := producerConfigText(t, b)
			root := t.TempDir()
			podFS(b, b.StatefulSets[producerSet].Obj, producer, root)
			rooted, _ := rootPaths(text, producer, root)
			if cfg, err := config.Parse([]byte(rooted), "config.json", nil); err == nil {
				problems = append(problems, checkKafka(b, cfg, text)...)
			}
			for _, p := range problems {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Fatalf("after %q the checks reported %d problem(s), none containing %q:\n%s", tc.name, len(problems), tc.want, strings.Join(problems, "\n"))
		})
	}
}

// kafkaACLs are the ACLs deploy/README.md gives the producer's principal
// on a cluster with authorization: WRITE and DESCRIBE on the topics
// prefixed "dbsync." (ProName), CREATE to create them, IDEMPOTENT_WRITE on
// the cluster.
func kafkaACLs() map[string]kfake.ACL {
	topic := func(op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "dbsync.", Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: op, Allow: true}
	}
	return map[string]kfake.ACL{
		"WRITE":            topic(kmsg.ACLOperationWrite),
		"DESCRIBE":         topic(kmsg.ACLOperationDescribe),
		"CREATE":           topic(kmsg.ACLOperationCreate),
		"IDEMPOTENT_WRITE": {Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationIdempotentWrite, Allow: true},
	}
}

// startOverlayKafka starts an in-process Kafka cluster (kfake) as the
// overlay expects it: TLS with a certificate of the test's kafka-ca.crt,
// SASL SCRAM-SHA-512 with ACLs, the producer's user (cfg's, with the
// password of the test's secret file) granted acls. It returns the
// brokers' addresses.
func startOverlayKafka(t *testing.T, cfg *config.Config, sec kafkaSecrets, acls []kfake.ACL, opts ...kfake.Opt) []string {
	t.Helper()
	// Always the in-process cluster, DBSYNC_TEST_KAFKA or not: the test
	// sets its TLS, users and ACLs.
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(cfg.Kafka.SASL.Mechanism, "admin", "admin-secret"),
		kfake.User(cfg.Kafka.SASL.Mechanism, cfg.Kafka.SASL.User, sec.KafkaPassword, acls...),
		kfake.TLS(sec.KafkaPKI.ServerTLS(t, false))}, opts...)...)
	if err != nil {
		t.Fatalf("start the in-process Kafka cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// TestKafkaQueueConnects runs the producer's Kafka queue from the
// overlay's config as loaded in the pod (the password and CA from the
// mounted Secret; only Kafka.Brokers moved to an in-process cluster on
// 127.0.0.1) against a cluster with TLS, SASL SCRAM-SHA-512 and ACLs, the
// principal granted what deploy/README.md lists: `producer doctor`'s probe
// finds nothing missing, the queue creates its topic and publishes, and
// the probe finds the topic. Without each of the ACLs in turn the probe
// reports what is missing, but for those WRITE implies (DESCRIBE, and
// IDEMPOTENT_WRITE since Kafka 3.0): the queue publishes without them.
func TestKafkaQueueConnects(t *testing.T) {
	b, sec := kafkaApp(t)
	_, producer := podContainer(t, b, producerSet, producerContainer)
	cfg := producerConfig(t, b, producer)
	if cfg.Kafka.SASL.Password != sec.KafkaPassword || cfg.Kafka.TLS.Effective(false) != config.TLSVerifyIdentity {
		t.Fatalf("the config as loaded in the pod has SASL password %t (from the Secret) and TLS %q", cfg.Kafka.SASL.Password == sec.KafkaPassword, cfg.Kafka.TLS.Effective(false))
	}
	all := kafkaACLs()
	var acls []kfake.ACL
	for _, k := range keysOf(all) {
		acls = append(acls, all[k])
	}
	cfg.Kafka.Brokers = startOverlayKafka(t, cfg, sec, acls)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	probe, err := wiring.ProbeBroker(ctx, cfg)
	if err != nil {
		t.Fatalf("the doctor's probe with the overlay's config: %v", err)
	}
	if probe.Warning != "" {
		t.Errorf("the doctor's probe with the README's ACLs warns: %s", probe.Warning)
	}
	q, err := wiring.OpenQueue(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("wiring.OpenQueue with the overlay's config: %v", err)
	}
	defer q.Close()
	msgs := []mq.Message{{Subject: cfg.ProName + "shop.orders", ID: "mysql-bin.000001:4:0", Data: []byte(`{"op":"insert"}`)}}
	if err := q.Publish(ctx, msgs); err != nil {
		t.Fatalf("Publish with the overlay's config: %v", err)
	}
	probe, err = wiring.ProbeBroker(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(probe.Detail, "1 topic(s)") || probe.Warning != "" {
		t.Errorf("after publishing, the probe says %q (warning %q), want the one topic and no warning", probe.Detail, probe.Warning)
	}

	// Without each ACL in turn, on a cluster already holding a topic of the
	// producer's: the probe names what is missing, except for what WRITE
	// implies (DESCRIBE; IDEMPOTENT_WRITE since Kafka 3.0, as kfake does):
	// then the queue still publishes.
	implied := map[string]string{"DESCRIBE": "implied by WRITE", "IDEMPOTENT_WRITE": "implied by WRITE since Kafka 3.0"}
	topic := mq.KafkaTopic(msgs[0].Subject)
	for _, name := range keysOf(all) {
		t.Run("without "+name, func(t *testing.T) {
			var fewer []kfake.ACL
			for _, k := range keysOf(all) {
				if k != name {
					fewer = append(fewer, all[k])
				}
			}
			c := *cfg
			c.Kafka.Brokers = startOverlayKafka(t, cfg, sec, fewer, kfake.SeedTopics(1, topic))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			probe, err := wiring.ProbeBroker(ctx, &c)
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			why, ok := implied[name]
			if !ok {
				if probe.Warning == "" {
					t.Errorf("without %s the doctor's probe finds nothing missing (%s)", name, probe.Detail)
				}
				return
			}
			if probe.Warning != "" {
				t.Errorf("without %s (%s) the probe warns: %s", name, why, probe.Warning)
			}
			q, err := wiring.OpenQueue(ctx, &c, nil)
			if err != nil {
				t.Fatalf("OpenQueue without %s (%s): %v", name, why, err)
			}
			defer q.Close()
			if err := q.Publish(ctx, msgs); err != nil {
				t.Errorf("Publish without %s (%s): %v", name, why, err)
			}
		})
	}
}
