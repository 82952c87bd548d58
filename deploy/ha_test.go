package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestHADecodesStrictly loads the ha overlay (its secret files filled
// in): its kustomization lists exactly the directory's files, every
// resource and patch decodes strictly into its Kubernetes type, and it
// adds the disruption budgets and the routes' NetworkPolicy, patches the
// two StatefulSets and the NATS headless Service, and replaces the two
// configs, on top of the example overlay.
func TestHADecodesStrictly(t *testing.T) {
	dir, _ := haDir(t)
	b, err := loadBase(filepath.Join(dir, haOverlayDir))
	if err != nil {
		t.Fatal(err)
	}
	k := b.Kustomization
	if !slices.Contains(k.Resources, "../example") {
		t.Errorf("%s/kustomization.yaml: resources %q, want ../example among them (its Secrets, the base)", haOverlayDir, k.Resources)
	}
	if k.Namespace != "dbsync" {
		t.Errorf("%s/kustomization.yaml: namespace %q, want the example's \"dbsync\"", haOverlayDir, k.Namespace)
	}
	for _, name := range []string{producerSet, natsSet} {
		if _, ok := b.PDBs[name]; !ok {
			t.Errorf("%s: no PodDisruptionBudget %q (have %s)", haOverlayDir, name, keysOf(b.PDBs))
		}
	}
	if _, ok := b.NetworkPolicies["dbsync-nats-routes"]; !ok {
		t.Errorf("%s: no NetworkPolicy \"dbsync-nats-routes\"", haOverlayDir)
	}
	for _, id := range []string{"StatefulSet/" + producerSet, "StatefulSet/" + natsSet, "Service/dbsync-nats-headless"} {
		if _, ok := b.Patched[id]; !ok {
			t.Errorf("%s: no patch of %s (patched: %s)", haOverlayDir, id, keysOf(b.Patched))
		}
	}
	for _, g := range k.ConfigMapGenerator {
		if g.Behavior != "replace" {
			t.Errorf("%s/kustomization.yaml: configMapGenerator %q has behavior %q; the overlay replaces the base's configs", haOverlayDir, g.Name, g.Behavior)
		}
	}
	if len(k.SecretGenerator) > 0 || len(k.Images) > 0 {
		t.Errorf("%s/kustomization.yaml: Secrets come from the example overlay and images from the base, not from here", haOverlayDir)
	}
}

// TestHAWiring checks the ha overlay as kustomize builds it: everything
// checkWiring checks of the base (config loaded with pkg/config against the
// mounted files, probes, Secrets, NetworkPolicies, routes included), and
// what high availability needs (checkHA): three NATS servers and two
// producers, each spread over nodes, started in parallel and under a
// disruption budget of one pod; the NATS checkpoint store with standbys
// and three replicas; no producer volume; the headless Service of the
// routes.
func TestHAWiring(t *testing.T) {
	b, _ := haApp(t)
	for _, p := range checkWiring(b, loadDockerfile(t)) {
		t.Error(p)
	}
	_, producer := podContainer(t, b, producerSet, producerContainer)
	for _, p := range checkHA(b, producerConfig(t, b, producer)) {
		t.Error(p)
	}
}

// TestHAWiringCatchesMistakes breaks the built ha overlay one way at a
// time and checks that checkWiring or checkHA reports it.
func TestHAWiringCatchesMistakes(t *testing.T) {
	dir, _ := haDir(t)
	cfgName := func(t *testing.T, b *base) string {
		for _, v := range b.StatefulSets[producerSet].Obj.Spec.Template.Spec.Volumes {
			if v.Name == "config" && v.ConfigMap != nil {
				return v.ConfigMap.Name
			}
		}
		t.Fatalf("test setup: the producer mounts no ConfigMap volume \"config\"")
		return ""
	}
	setConfig := func(t *testing.T, b *base, old, new string) {
		cm := b.ConfigMaps[cfgName(t, b)]
		if !strings.Contains(cm.Data["config.json"], old) {
			t.Fatalf("test setup: config.json has no %q", old)
		}
		cm.Data["config.json"] = strings.Replace(cm.Data["config.json"], old, new, 1)
	}
	pdb := func(t *testing.T, b *base, name string) *policyv1.PodDisruptionBudget {
		ls, ok := b.PDBs[name]
		if !ok {
			t.Fatalf("test setup: no PodDisruptionBudget %q", name)
		}
		return ls.Obj
	}
	routes := func(t *testing.T, b *base) *corev1.ServiceSpec {
		return &b.Services["dbsync-nats-headless"].Obj.Spec
	}
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, b *base)
		want   string
	}{
		{"one NATS server", func(t *testing.T, b *base) { *b.StatefulSets[natsSet].Obj.Spec.Replicas = 1 }, "spec.replicas is 1, want 3"},
		{"one producer", func(t *testing.T, b *base) { *b.StatefulSets[producerSet].Obj.Spec.Replicas = 1 }, "spec.replicas is 1, want 2"},
		{"bolt store", func(t *testing.T, b *base) {
			setConfig(t, b, `"DaoName": "nats"`, `"DaoName": "bolt"`)
			setConfig(t, b, `"Standby": true`, `"Standby": false`)
		}, "spec.replicas is 2, want 1"},
		{"no standby", func(t *testing.T, b *base) {
			setConfig(t, b, `"Standby": true`, `"Standby": false`)
		}, "spec.replicas is 2, want 1"},
		{"one stream replica", func(t *testing.T, b *base) {
			setConfig(t, b, `"Replicas": 3`, `"Replicas": 1`)
		}, "JetStream.Replicas is 1, want 3"},
		{"ordered NATS start", func(t *testing.T, b *base) {
			b.StatefulSets[natsSet].Obj.Spec.PodManagementPolicy = "OrderedReady"
		}, `podManagementPolicy is "OrderedReady"`},
		{"producers on one node", func(t *testing.T, b *base) {
			b.StatefulSets[producerSet].Obj.Spec.Template.Spec.Affinity = nil
		}, "no podAntiAffinity term"},
		{"NATS anti-affinity on zones only", func(t *testing.T, b *base) {
			a := b.StatefulSets[natsSet].Obj.Spec.Template.Spec.Affinity.PodAntiAffinity
			a.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey = "topology.kubernetes.io/zone"
		}, "no podAntiAffinity term"},
		{"budget with minAvailable", func(t *testing.T, b *base) {
			p := pdb(t, b, producerSet)
			p.Spec.MaxUnavailable, p.Spec.MinAvailable = nil, ptrTo(intstr.FromInt32(1))
		}, "spec.minAvailable is set"},
		{"budget selects nothing", func(t *testing.T, b *base) {
			pdb(t, b, natsSet).Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "nats"
		}, "0 PodDisruptionBudgets select its pods"},
		{"producer volume kept", func(t *testing.T, b *base) {
			s := b.StatefulSets[producerSet].Obj
			s.Spec.VolumeClaimTemplates = b.StatefulSets[natsSet].Obj.Spec.VolumeClaimTemplates
		}, "a volume per producer holds nothing"},
		{"budget of two", func(t *testing.T, b *base) {
			pdb(t, b, natsSet).Spec.MaxUnavailable = ptrTo(intstr.FromInt32(2))
		}, "spec.maxUnavailable must be 1"},
		{"headless Service without the route port", func(t *testing.T, b *base) {
			spec := routes(t, b)
			spec.Ports = slices.DeleteFunc(spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "cluster" })
		}, "no port 6222 targeting the container port"},
		{"routes resolve only when ready", func(t *testing.T, b *base) {
			routes(t, b).PublishNotReadyAddresses = false
		}, "publishNotReadyAddresses is false"},
		{"route port open to clients", func(t *testing.T, b *base) {
			b.NetworkPolicies["dbsync-nats-routes"].Obj.Spec.Ingress[0].From = nil
		}, "route port 6222 is reachable from a pod labelled"},
		{"no route egress", func(t *testing.T, b *base) {
			np := b.NetworkPolicies["dbsync-nats-routes"].Obj
			np.Spec.Egress = np.Spec.Egress[1:]
		}, "cannot reach each other's route port 6222"},
		{"no DNS for NATS", func(t *testing.T, b *base) {
			np := b.NetworkPolicies["dbsync-nats-routes"].Obj
			np.Spec.Egress = np.Spec.Egress[:1]
		}, "NATS cannot reach the cluster DNS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := kustomizeBuild(t, filepath.Join(dir, haOverlayDir)).asBase()
			tc.mutate(t, b)
			problems := checkWiring(b, nil)
			_, producer := podContainer(t, b, producerSet, producerContainer)
			problems = append(problems, checkHA(b, producerConfig(t, b, producer))...)
			for _, p := range problems {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Fatalf("after %q the checks reported %d problem(s), none containing %q:\n%s", tc.name, len(problems), tc.want, strings.Join(problems, "\n"))
		})
	}
}

// TestLoadBaseRejectsPatchMistakes checks that loadBase catches, in the
// ha overlay, a misspelt field of a patch, a patch of an object no
// resource defines, a patch file that is not listed, and a replaced
// ConfigMap the bases do not generate.
func TestLoadBaseRejectsPatchMistakes(t *testing.T) {
	edit := func(t *testing.T, p, old, new string) {
		t.Helper()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), old) {
			t.Fatalf("test setup: %s has no %q", p, old)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   string
	}{
		{"misspelt field", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "producer-standby.yaml"), "podManagementPolicy:", "podManagementPolicies:")
		}, `unknown field "podManagementPolicies"`},
		{"patch of nothing", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "nats-cluster.yaml"), "name: dbsync-nats-headless", "name: nats-headless")
		}, `patch of Service "nats-headless", which no resource defines`},
		{"unlisted patch", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "kustomization.yaml"), "  - path: producer-standby.yaml\n", "")
		}, "producer-standby.yaml is not listed"},
		{"replacing what no base generates", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "kustomization.yaml"), "- name: dbsync-nats-config", "- name: dbsync-nats-conf")
		}, `behavior replace, but no base defines ConfigMap "dbsync-nats-conf"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := haDir(t)
			tc.mutate(t, filepath.Join(dir, haOverlayDir))
			_, err := loadBase(filepath.Join(dir, haOverlayDir))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadBase after %s: error %v, want one containing %q", tc.name, err, tc.want)
			}
		})
	}
}
