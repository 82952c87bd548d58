package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/test/testenv"
)

// kafkaOverlayDir is the overlay publishing to an existing Kafka cluster,
// relative to this package.
const kafkaOverlayDir = "overlays/kafka"

// kafkaSecrets are the values kafkaDir puts in the overlay's secret files.
type kafkaSecrets struct {
	MysqlPassword, KafkaPassword string
	// MysqlPKI's CA is mysql-ca.crt; KafkaPKI's is kafka-ca.crt, and its
	// server certificate (127.0.0.1) is the one the tests' brokers present.
	MysqlPKI, KafkaPKI *testenv.PKI
}

// kafkaDir copies base/ and overlays/kafka/ to a temporary directory and
// creates every file the overlay's generators read (two test PKIs' CAs,
// random passwords). It returns the directory and the values written.
func kafkaDir(t *testing.T) (string, kafkaSecrets) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{baseDir, kafkaOverlayDir} {
		files, err := filesUnder(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			copyFile(t, filepath.Join(d, f), filepath.Join(dir, d, f))
		}
	}
	random := func(prefix string) string {
		buf := make([]byte, 16)
		if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		return prefix + hex.EncodeToString(buf)
	}
	sec := kafkaSecrets{MysqlPassword: random("pw-"), KafkaPassword: random("kafka-"), MysqlPKI: testenv.NewPKI(t), KafkaPKI: testenv.NewPKI(t)}
	secrets := filepath.Join(dir, kafkaOverlayDir, "secrets")
	if err := os.MkdirAll(secrets, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"mysql-password": sec.MysqlPassword + "\n", "kafka-password": sec.KafkaPassword + "\n"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, sec.MysqlPKI.CA, filepath.Join(secrets, "mysql-ca.crt"))
	copyFile(t, sec.KafkaPKI.CA, filepath.Join(secrets, "kafka-ca.crt"))
	return dir, sec
}

// kafkaApp builds the kafka overlay kafkaDir made, as `kubectl apply -k`
// would apply it, and returns it as a loaded base.
func kafkaApp(t *testing.T) (*base, kafkaSecrets) {
	t.Helper()
	dir, sec := kafkaDir(t)
	return kustomizeBuild(t, filepath.Join(dir, kafkaOverlayDir)).asBase(), sec
}

// checkKafka checks what the kafka overlay is for, beyond checkWiring:
// the producer's config (cfg as loaded in the pod, raw its config.json)
// publishes to Kafka with SASL and a password file, over TLS with a CA;
// one producer with the bolt checkpoint; and nothing of NATS is left (no
// object named dbsync-nats*, no NATS client label, no JetStream section).
// It returns one message per problem.
func checkKafka(b *base, cfg *config.Config, raw string) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if cfg.MQName != "kafka" {
		fail("config.json: MQName is %q, want \"kafka\": the overlay publishes to an existing Kafka cluster", cfg.MQName)
	}
	if len(cfg.Kafka.Brokers) == 0 {
		fail("config.json: Kafka.Brokers is empty")
	}
	if s := cfg.Kafka.SASL; s.Mechanism != "SCRAM-SHA-512" || s.User == "" || s.PasswordFile == "" {
		fail("config.json: Kafka.SASL is %q as %q with password file %q; want SCRAM-SHA-512, a user and a PasswordFile of the Secret", s.Mechanism, s.User, s.PasswordFile)
	}
	if cfg.Kafka.TLS.CA == "" {
		fail("config.json: Kafka.TLS.CA is empty: the brokers' certificates would be checked against the image's roots, which lack a private CA")
	}
	if cfg.Storage.DaoName != "bolt" {
		fail("config.json: Storage.DaoName is %q, want the base's bolt (no NATS here to hold the checkpoint)", cfg.Storage.DaoName)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err == nil {
		if _, ok := m["JetStream"]; ok {
			fail("config.json: a JetStream section is left: nothing reads it with MQName kafka")
		}
	}
	leftover := func(kind string, names []string) {
		for _, n := range names {
			if strings.HasPrefix(n, "dbsync-nats") {
				fail("%s: %s %q is left over from NATS: the overlay runs no NATS", b.Dir, kind, n)
			}
		}
	}
	leftover("StatefulSet", keysOf(b.StatefulSets))
	leftover("Service", keysOf(b.Services))
	leftover("NetworkPolicy", keysOf(b.NetworkPolicies))
	leftover("ConfigMap", keysOf(b.ConfigMaps))
	leftover("Secret", keysOf(b.Secrets))
	for _, name := range keysOf(b.StatefulSets) {
		ls := b.StatefulSets[name]
		for k := range ls.Obj.Spec.Template.Labels {
			if strings.Contains(k, "nats") {
				fail("%s: pod label %s is left over from NATS", ls.Where, k)
			}
		}
	}
	if p, ok := b.StatefulSets[producerSet]; ok && (p.Obj.Spec.Replicas == nil || *p.Obj.Spec.Replicas != 1) {
		fail("%s: spec.replicas must be 1: one producer per source, its bolt checkpoint on its volume", p.Where)
	}
	return problems
}

// producerConfigText returns the config.json the producer's config volume
// holds in b.
func producerConfigText(t *testing.T, b *base) string {
	t.Helper()
	for _, v := range b.StatefulSets[producerSet].Obj.Spec.Template.Spec.Volumes {
		if v.Name == "config" && v.ConfigMap != nil {
			if cm, ok := b.ConfigMaps[v.ConfigMap.Name]; ok {
				return cm.Data["config.json"]
			}
		}
	}
	t.Fatalf("the producer mounts no ConfigMap volume \"config\" with config.json")
	return ""
}

func intstrFromInt(n int32) intstr.IntOrString { return intstr.FromInt32(n) }
