package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// built is the output of a kustomize build, decoded strictly.
type built struct {
	Dir             string
	StatefulSets    map[string]*appsv1.StatefulSet
	Services        map[string]*corev1.Service
	NetworkPolicies map[string]*networkingv1.NetworkPolicy
	PDBs            map[string]*policyv1.PodDisruptionBudget
	ConfigMaps      map[string]*corev1.ConfigMap
	Secrets         map[string]*corev1.Secret
	Namespaces      map[string]string // kind/name -> namespace
}

// kustomizeBuild builds dir with kustomize (the library kubectl
// embeds) and decodes every object strictly.
func kustomizeBuild(t *testing.T, dir string) *built {
	t.Helper()
	out, err := runKustomize(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	docs, _, err := splitYAML(out)
	if err != nil {
		t.Fatalf("kustomize build %s: output: %v", dir, err)
	}
	b := &built{
		Dir:          dir,
		StatefulSets: map[string]*appsv1.StatefulSet{}, Services: map[string]*corev1.Service{},
		NetworkPolicies: map[string]*networkingv1.NetworkPolicy{}, ConfigMaps: map[string]*corev1.ConfigMap{},
		PDBs:    map[string]*policyv1.PodDisruptionBudget{},
		Secrets: map[string]*corev1.Secret{}, Namespaces: map[string]string{},
	}
	for i, doc := range docs {
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("kustomize build %s: object %d: %v", dir, i+1, err)
		}
		var obj any
		switch tm.Kind {
		case "StatefulSet":
			o := &appsv1.StatefulSet{}
			b.StatefulSets[tm.Metadata.Name], obj = o, o
		case "Service":
			o := &corev1.Service{}
			b.Services[tm.Metadata.Name], obj = o, o
		case "NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			b.NetworkPolicies[tm.Metadata.Name], obj = o, o
		case "PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			b.PDBs[tm.Metadata.Name], obj = o, o
		case "ConfigMap":
			o := &corev1.ConfigMap{}
			b.ConfigMaps[tm.Metadata.Name], obj = o, o
		case "Secret":
			o := &corev1.Secret{}
			b.Secrets[tm.Metadata.Name], obj = o, o
		default:
			t.Errorf("kustomize build %s: %s %q is a kind the test does not decode", dir, tm.Kind, tm.Metadata.Name)
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Errorf("kustomize build %s: %s %q: strict decoding: %v", dir, tm.Kind, tm.Metadata.Name, err)
		}
		if want := wantAPIVersion[tm.Kind]; tm.APIVersion != want {
			t.Errorf("kustomize build %s: %s %q: apiVersion %q, want %q", dir, tm.Kind, tm.Metadata.Name, tm.APIVersion, want)
		}
		b.Namespaces[tm.Kind+"/"+tm.Metadata.Name] = tm.Metadata.Namespace
	}
	return b
}

// asBase returns the build as a loaded base (names as applied, every
// generated name hashed and every reference rewritten), so checkWiring
// checks exactly what `kubectl apply -k` applies, patches included.
func (bt *built) asBase() *base {
	b := &base{
		Dir:             "kustomize build " + bt.Dir,
		StatefulSets:    map[string]located[appsv1.StatefulSet]{},
		Services:        map[string]located[corev1.Service]{},
		NetworkPolicies: map[string]located[networkingv1.NetworkPolicy]{},
		PDBs:            map[string]located[policyv1.PodDisruptionBudget]{},
		ConfigMaps:      map[string]dataObject{},
		Secrets:         map[string]dataObject{},
		Patched:         map[string]string{},
	}
	where := func(kind, name string) string { return fmt.Sprintf("%s: %s %q", b.Dir, kind, name) }
	for n, o := range bt.StatefulSets {
		b.StatefulSets[n] = located[appsv1.StatefulSet]{where("StatefulSet", n), o}
	}
	for n, o := range bt.Services {
		b.Services[n] = located[corev1.Service]{where("Service", n), o}
	}
	for n, o := range bt.NetworkPolicies {
		b.NetworkPolicies[n] = located[networkingv1.NetworkPolicy]{where("NetworkPolicy", n), o}
	}
	for n, o := range bt.PDBs {
		b.PDBs[n] = located[policyv1.PodDisruptionBudget]{where("PodDisruptionBudget", n), o}
	}
	for n, o := range bt.ConfigMaps {
		d := map[string]string{}
		for k, v := range o.Data {
			d[k] = v
		}
		for k, v := range o.BinaryData {
			d[k] = string(v)
		}
		b.ConfigMaps[n] = dataObject{where("ConfigMap", n), d}
	}
	for n, o := range bt.Secrets {
		d := map[string]string{}
		for k, v := range o.Data {
			d[k] = string(v)
		}
		for k, v := range o.StringData {
			d[k] = v
		}
		b.Secrets[n] = dataObject{where("Secret", n), d}
	}
	return b
}

// runKustomize builds the kustomization in dir with kustomize's own Go
// library (the kustomize kubectl embeds) and returns the YAML, or the
// build's error.
func runKustomize(t *testing.T, dir string) ([]byte, error) {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return out, nil
}

// TestOverlayNeedsSecretFiles checks that the example overlay does not
// build while a secret file is missing: nothing is applied with a
// placeholder.
func TestOverlayNeedsSecretFiles(t *testing.T) {
	dir, _ := exampleDir(t)
	missing := filepath.Join(dir, overlayDir, "secrets", "producer.nk")
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	if _, err := runKustomize(t, filepath.Join(dir, overlayDir)); err == nil {
		t.Errorf("kustomize built the example overlay without secrets/producer.nk")
	} else if !strings.Contains(err.Error(), "producer.nk") {
		t.Errorf("kustomize build without secrets/producer.nk: the error does not name the file: %v", err)
	}
	if _, err := loadBase(filepath.Join(dir, overlayDir)); err == nil || !strings.Contains(err.Error(), "producer.nk") {
		t.Errorf("loadBase without secrets/producer.nk: %v, want an error naming the file", err)
	}
}

// TestKustomizeBuild builds the base, the example, kafka and ha overlays
// (their secret files filled in) with kubectl's kustomize and
// checks the result: the base yields no Secret; the overlays' Secrets and
// ConfigMaps get hashed names and every reference of the workloads is
// rewritten to them (so a Secret of the plain name is never touched);
// every image is the pinned one; everything lands in the overlay's
// namespace; what an overlay deletes is gone.
func TestKustomizeBuild(t *testing.T) {
	base := kustomizeBuild(t, baseDir)
	for name := range base.Secrets {
		t.Errorf("kustomize build %s yields Secret %q: the base must not create Secrets", baseDir, name)
	}

	t.Run("example", func(t *testing.T) {
		dir, sec := exampleDir(t)
		b := checkOverlayBuild(t, filepath.Join(dir, overlayDir))
		if n := generatedName(t, "Secret", "dbsync-producer", keysOf(b.Secrets)); n != "" {
			if got := string(b.Secrets[n].Data["mysql-password"]); strings.TrimRight(got, "\n") != sec.MysqlPassword {
				t.Errorf("Secret %q key mysql-password does not hold the file's content", n)
			}
		}
	})
	t.Run("kafka", func(t *testing.T) {
		dir, sec := kafkaDir(t)
		b := checkOverlayBuild(t, filepath.Join(dir, kafkaOverlayDir))
		if n := generatedName(t, "Secret", "dbsync-producer", keysOf(b.Secrets)); n != "" {
			if got := string(b.Secrets[n].Data["kafka-password"]); strings.TrimRight(got, "\n") != sec.KafkaPassword {
				t.Errorf("Secret %q key kafka-password does not hold the file's content", n)
			}
		}
		want, err := os.ReadFile(filepath.Join(kafkaOverlayDir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if n := generatedName(t, "ConfigMap", "dbsync-config", keysOf(b.ConfigMaps)); n != "" && b.ConfigMaps[n].Data["config.json"] != string(want) {
			t.Errorf("ConfigMap %q key config.json is not %s/config.json", n, kafkaOverlayDir)
		}
	})
	t.Run("ha", func(t *testing.T) {
		dir, _ := haDir(t)
		b := checkOverlayBuild(t, filepath.Join(dir, haOverlayDir))
		// The replaced ConfigMaps hold the overlay's files, not the base's.
		for _, g := range []struct{ name, key, file string }{
			{"dbsync-config", "config.json", "config.json"},
			{"dbsync-nats-config", "nats.conf", "nats.conf"},
		} {
			want, err := os.ReadFile(filepath.Join(haOverlayDir, g.file))
			if err != nil {
				t.Fatal(err)
			}
			if n := generatedName(t, "ConfigMap", g.name, keysOf(b.ConfigMaps)); n != "" && b.ConfigMaps[n].Data[g.key] != string(want) {
				t.Errorf("ConfigMap %q key %s is not %s/%s", n, g.key, haOverlayDir, g.file)
			}
		}
	})
}

// generatedName returns the one name of names that is name plus a content
// hash (a generator's output), reporting none, several, or name itself.
func generatedName(t *testing.T, kind, name string, names []string) string {
	t.Helper()
	var found []string
	for _, n := range names {
		if strings.HasPrefix(n, name+"-") && len(n) > len(name)+1 && !strings.Contains(n[len(name)+1:], "-") {
			found = append(found, n)
		}
		if n == name {
			t.Errorf("%s %q has no content hash in its name: it would replace one of the same name", kind, n)
		}
	}
	if len(found) != 1 {
		t.Errorf("%s %q: generated as %q, want exactly one hashed name", kind, name, found)
		return ""
	}
	return found[0]
}

// generators returns the generators of b and of every base below it.
func (b *base) generators() (configMaps, secrets []generator) {
	configMaps = append(configMaps, b.Kustomization.ConfigMapGenerator...)
	secrets = append(secrets, b.Kustomization.SecretGenerator...)
	for _, sub := range b.Bases {
		c, s := sub.generators()
		configMaps, secrets = append(configMaps, c...), append(secrets, s...)
	}
	return configMaps, secrets
}

// deleted returns the objects b and every base below it delete with
// "$patch: delete" patches, by kind/name.
func (b *base) deleted() map[string]string {
	out := map[string]string{}
	for _, sub := range b.Bases {
		for id, where := range sub.deleted() {
			out[id] = where
		}
	}
	for id, where := range b.Deleted {
		out[id] = where
	}
	return out
}

// gone reports whether a patch (deleted, by kind/name) deletes the
// generated kind/name; then it checks that no object of names is that
// generator's output.
func gone(t *testing.T, deleted map[string]string, kind, name string, names []string) bool {
	t.Helper()
	where, ok := deleted[kind+"/"+name]
	if !ok {
		return false
	}
	for _, n := range names {
		if n == name || (strings.HasPrefix(n, name+"-") && !strings.Contains(n[len(name)+1:], "-")) {
			t.Errorf("%s %q is deleted by %s, but the build still holds %q", kind, name, where, n)
		}
	}
	return true
}

// checkOverlayBuild builds the overlay in dir and checks what every
// overlay must yield (see TestKustomizeBuild); it returns the build.
func checkOverlayBuild(t *testing.T, dir string) *built {
	t.Helper()
	b := kustomizeBuild(t, dir)
	src, err := loadBase(dir)
	if err != nil {
		t.Fatal(err)
	}
	for id, ns := range b.Namespaces {
		if ns != src.Kustomization.Namespace {
			t.Errorf("%s is in namespace %q, want %q", id, ns, src.Kustomization.Namespace)
		}
	}

	// Generated objects: hashed names, one per generator; none for what
	// the overlay deletes.
	configMaps, secrets := src.generators()
	deleted := src.deleted()
	for _, g := range secrets {
		if gone(t, deleted, "Secret", g.Name, keysOf(b.Secrets)) {
			continue
		}
		n := generatedName(t, "Secret", g.Name, keysOf(b.Secrets))
		if s := b.Secrets[n]; s != nil && g.Type != "" && string(s.Type) != g.Type {
			t.Errorf("Secret %q has type %q, want %q", n, s.Type, g.Type)
		}
	}
	for _, g := range configMaps {
		if gone(t, deleted, "ConfigMap", g.Name, keysOf(b.ConfigMaps)) {
			continue
		}
		generatedName(t, "ConfigMap", g.Name, keysOf(b.ConfigMaps))
	}
	// What the overlay deletes is gone from the build.
	for _, id := range keysOf(deleted) {
		kind, name, _ := strings.Cut(id, "/")
		var names []string
		switch kind {
		case "StatefulSet":
			names = keysOf(b.StatefulSets)
		case "Service":
			names = keysOf(b.Services)
		case "NetworkPolicy":
			names = keysOf(b.NetworkPolicies)
		case "PodDisruptionBudget":
			names = keysOf(b.PDBs)
		case "ConfigMap", "Secret":
			continue // gone() above
		}
		if slices.Contains(names, name) {
			t.Errorf("%s %q is deleted by %s, but the build still holds it", kind, name, deleted[id])
		}
	}

	// What the images: of the base make of the bare names.
	pinnedImages := map[string]bool{}
	for _, im := range src.root().Kustomization.Images {
		name := im.Name
		if im.NewName != "" {
			name = im.NewName
		}
		if im.Digest != "" {
			pinnedImages[name+"@"+im.Digest] = true
		} else {
			pinnedImages[name+":"+im.NewTag] = true
		}
	}

	// Every reference resolves to an object of the build.
	for _, s := range b.StatefulSets {
		at := fmt.Sprintf("StatefulSet %q", s.Name)
		for _, v := range s.Spec.Template.Spec.Volumes {
			if v.Secret != nil && b.Secrets[v.Secret.SecretName] == nil {
				t.Errorf("%s: volume %q mounts Secret %q, which the build does not hold (Secrets: %s)", at, v.Name, v.Secret.SecretName, keysOf(b.Secrets))
			}
			if v.ConfigMap != nil && b.ConfigMaps[v.ConfigMap.Name] == nil {
				t.Errorf("%s: volume %q mounts ConfigMap %q, which the build does not hold (ConfigMaps: %s)", at, v.Name, v.ConfigMap.Name, keysOf(b.ConfigMaps))
			}
		}
		pod := s.Spec.Template.Spec
		for _, c := range append(append([]corev1.Container(nil), pod.InitContainers...), pod.Containers...) {
			for _, e := range c.Env {
				if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil && b.ConfigMaps[r.ConfigMapKeyRef.Name] == nil {
					t.Errorf("%s, container %q: env %s names ConfigMap %q, which the build does not hold", at, c.Name, e.Name, r.ConfigMapKeyRef.Name)
				}
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && b.Secrets[r.SecretKeyRef.Name] == nil {
					t.Errorf("%s, container %q: env %s names Secret %q, which the build does not hold", at, c.Name, e.Name, r.SecretKeyRef.Name)
				}
			}

			if !pinnedImages[c.Image] {
				t.Errorf("%s, container %q: image %q after the build, want one of the pinned %s", at, c.Name, c.Image, keysOf(pinnedImages))
			}
		}
	}
	return b
}
