package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/dbsync/dbsync/pkg/config"
)

// haOverlayDir is the high-availability overlay, relative to this package.
const haOverlayDir = "overlays/ha"

// The replica counts the ha overlay runs.
const (
	haNATSReplicas     = 3
	haProducerReplicas = 2
)

// haSecrets are the values haDir puts in the secret files: the example's,
// with the NATS certificate replaced by one fit for the cluster's routes.
type haSecrets struct {
	exampleSecrets
	// NATSCA, NATSCert and NATSKey are the files of the Secret
	// "dbsync-nats-tls" (ca.crt, tls.crt, tls.key).
	NATSCA, NATSCert, NATSKey string
	// CertNames are the DNS names the certificate carries: those of the
	// subjectAltName deploy/README.md tells the operator to use for this
	// overlay. (It also carries 127.0.0.1, where the tests run the
	// servers.)
	CertNames []string
}

// haDir copies base/, overlays/example/ and overlays/ha/ to a temporary
// directory and fills in the example's secret files (exampleDir), with a
// NATS certificate as deploy/README.md makes it for this overlay: the
// names of its subjectAltName, and no extendedKeyUsage, so every server
// presents it on its routes too.
func haDir(t *testing.T) (string, haSecrets) {
	t.Helper()
	dir, ex := exampleDir(t)
	files, err := filesUnder(haOverlayDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		copyFile(t, filepath.Join(haOverlayDir, f), filepath.Join(dir, haOverlayDir, f))
	}
	sec := haSecrets{exampleSecrets: ex, CertNames: readmeCertNames(t)}
	sec.NATSCA, sec.NATSCert, sec.NATSKey = newNATSPKI(t, sec.CertNames)
	secrets := filepath.Join(dir, overlayDir, "secrets")
	copyFile(t, sec.NATSCA, filepath.Join(secrets, "ca.crt"))
	copyFile(t, sec.NATSCert, filepath.Join(secrets, "nats.crt"))
	copyFile(t, sec.NATSKey, filepath.Join(secrets, "nats.key"))
	return dir, sec
}

// haApp builds the ha overlay haDir made, as `kubectl apply -k` would
// apply it, and returns it as a loaded base.
func haApp(t *testing.T) (*base, haSecrets) {
	t.Helper()
	dir, sec := haDir(t)
	return kustomizeBuild(t, filepath.Join(dir, haOverlayDir)).asBase(), sec
}

// readmeCertNames returns the DNS names of the subjectAltName that the
// high-availability section of deploy/README.md gives for the NATS
// certificate.
func readmeCertNames(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "\n## High availability")
	if i < 0 {
		t.Fatalf("deploy/README.md has no section \"## High availability\"")
	}
	section := text[i+1:]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	m := regexp.MustCompile(`subjectAltName=([^'"\s)]+)`).FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("deploy/README.md, section High availability: no subjectAltName=... for the NATS certificate")
	}
	var names []string
	for _, e := range strings.Split(m[1], ",") {
		if n, ok := strings.CutPrefix(e, "DNS:"); ok {
			names = append(names, n)
		}
	}
	return names
}

// newNATSPKI writes a CA and a certificate it signs for dnsNames and
// 127.0.0.1, without extendedKeyUsage (good for servers and clients, as
// openssl makes it from deploy/README.md's recipe), and its key. It
// returns the three files.
func newNATSPKI(t *testing.T, dnsNames []string) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dbsync-nats-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey := newKey()
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "dbsync-nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: dnsNames, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.crt", "CERTIFICATE", caDER), write("nats.crt", "CERTIFICATE", leafDER), write("nats.key", "EC PRIVATE KEY", keyDER)
}

// checkHA checks what the ha overlay adds to the wiring checkWiring
// checks: replica counts, the producer's config (cfg, as loaded in the
// pod) for a shared store and standbys, pod management, anti-affinity,
// disruption budgets, and the headless Service of the NATS routes. It
// returns one message per problem.
func checkHA(b *base, cfg *config.Config) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	producer, okP := b.StatefulSets[producerSet]
	nats, okN := b.StatefulSets[natsSet]
	if !okP || !okN {
		fail("%s: StatefulSets %q and %q are both needed (have %s)", b.Dir, producerSet, natsSet, keysOf(b.StatefulSets))
		return problems
	}
	replicas := func(s *appsv1.StatefulSet) int32 {
		if s.Spec.Replicas == nil {
			return 1
		}
		return *s.Spec.Replicas
	}

	if n := replicas(nats.Obj); n != haNATSReplicas {
		fail("%s: spec.replicas is %d, want %d: a JetStream cluster that goes on after losing one server", nats.Where, n, haNATSReplicas)
	}
	if n := replicas(producer.Obj); n != haProducerReplicas {
		fail("%s: spec.replicas is %d, want %d: one producer streaming, one standing by", producer.Where, n, haProducerReplicas)
	}
	if cfg.Storage.DaoName != "nats" {
		fail("config.json: Storage.DaoName is %q, want \"nats\": the replicas must share the checkpoint, in the NATS cluster", cfg.Storage.DaoName)
	}
	if !cfg.HA.Standby {
		fail("config.json: HA.Standby is false: the replica that finds the lease held would stop instead of standing by")
	}
	if cfg.JetStream.Replicas != int(replicas(nats.Obj)) {
		fail("config.json: JetStream.Replicas is %d, want %d (every NATS server): the stream and the checkpoint buckets must survive the loss of a server", cfg.JetStream.Replicas, replicas(nats.Obj))
	}
	if len(producer.Obj.Spec.VolumeClaimTemplates) > 0 && cfg.Storage.DaoName != "bolt" {
		fail("%s: volumeClaimTemplates %q: the checkpoint is in NATS, so a volume per producer holds nothing", producer.Where, producer.Obj.Spec.VolumeClaimTemplates[0].Name)
	}

	for _, ls := range []located[appsv1.StatefulSet]{producer, nats} {
		s := ls.Obj
		if s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			fail("%s: spec.podManagementPolicy is %q, want Parallel: with OrderedReady a pod is not (re)created while one before it is not ready", ls.Where, s.Spec.PodManagementPolicy)
		}
		if !spreadsOverNodes(s) {
			fail("%s: no podAntiAffinity term with topologyKey kubernetes.io/hostname selecting its own pods: two replicas on one node are lost together", ls.Where)
		}
		var budgets []string
		for _, name := range keysOf(b.PDBs) {
			pdb := b.PDBs[name]
			if !matchSelector(pdb.Obj.Spec.Selector, s.Spec.Template.Labels) {
				continue
			}
			budgets = append(budgets, name)
			if mu := pdb.Obj.Spec.MaxUnavailable; mu == nil || *mu != intstr.FromInt32(1) {
				fail("%s: spec.maxUnavailable must be 1 for StatefulSet %q (one pod at a time)", pdb.Where, s.Name)
			}
			if pdb.Obj.Spec.MinAvailable != nil {
				fail("%s: spec.minAvailable is set; use maxUnavailable 1 (a fixed number of available pods lets several go at once as replicas grow)", pdb.Where)
			}
		}
		if len(budgets) != 1 {
			fail("%s: %d PodDisruptionBudgets select its pods (%q), want one", ls.Where, len(budgets), budgets)
		}
	}
	for _, name := range keysOf(b.PDBs) {
		pdb := b.PDBs[name]
		n := 0
		for _, s := range b.StatefulSets {
			if matchSelector(pdb.Obj.Spec.Selector, s.Obj.Spec.Template.Labels) {
				n++
			}
		}
		if n != 1 {
			fail("%s: spec.selector selects the pods of %d StatefulSets, want exactly one", pdb.Where, n)
		}
	}

	// The routes name the pods through the headless Service, which must
	// publish them before they are ready and carry the route port.
	h, ok := b.Services[nats.Obj.Spec.ServiceName]
	if !ok {
		return problems // checkWorkloads reports it
	}
	if !h.Obj.Spec.PublishNotReadyAddresses {
		fail("%s: spec.publishNotReadyAddresses is false: the servers' names resolve only once they are ready, and they become ready only once their routes are up", h.Where)
	}
	port, clustered := natsRoutePort(nats.Obj)
	if !clustered {
		fail("%s: the NATS container has no container port named \"cluster\" (the routes)", nats.Where)
		return problems
	}
	found := false
	for _, sp := range h.Obj.Spec.Ports {
		if sp.Port == port && (sp.TargetPort == intstr.FromString("cluster") || sp.TargetPort == intstr.FromInt32(port)) {
			found = true
		}
	}
	if !found {
		fail("%s: no port %d targeting the container port \"cluster\" (ports: %s)", h.Where, port, describeServicePorts(h.Obj))
	}
	return problems
}

// spreadsOverNodes reports whether s's pods repel each other per node: a
// required or preferred podAntiAffinity term on kubernetes.io/hostname
// whose selector matches the pods' own labels.
func spreadsOverNodes(s *appsv1.StatefulSet) bool {
	a := s.Spec.Template.Spec.Affinity
	if a == nil || a.PodAntiAffinity == nil {
		return false
	}
	terms := append([]corev1.PodAffinityTerm(nil), a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
	for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		terms = append(terms, w.PodAffinityTerm)
	}
	for _, term := range terms {
		if term.TopologyKey == "kubernetes.io/hostname" && matchSelector(term.LabelSelector, s.Spec.Template.Labels) &&
			len(term.Namespaces) == 0 && term.NamespaceSelector == nil {
			return true
		}
	}
	return false
}
