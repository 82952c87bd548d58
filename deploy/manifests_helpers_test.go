package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization this base uses.
// It is decoded strictly: a field not listed here is an error, so a typo
// ("resource:") cannot silently drop files; add a field here when the base
// starts using it.
type kustomization struct {
	APIVersion         string      `json:"apiVersion"`
	Kind               string      `json:"kind"`
	Namespace          string      `json:"namespace,omitempty"`
	NamePrefix         string      `json:"namePrefix,omitempty"`
	Labels             []labelSet  `json:"labels,omitempty"`
	Resources          []string    `json:"resources,omitempty"`
	Patches            []patch     `json:"patches,omitempty"`
	ConfigMapGenerator []generator `json:"configMapGenerator,omitempty"`
	SecretGenerator    []generator `json:"secretGenerator,omitempty"`
	Images             []image     `json:"images,omitempty"`
}

type labelSet struct {
	Pairs            map[string]string `json:"pairs"`
	IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	IncludeTemplates bool              `json:"includeTemplates,omitempty"`
}

// patch is a kustomize patch read from a file: a strategic merge patch
// naming its object by apiVersion, kind and metadata.name. (Inline
// patches and targets are not used here: a patch file is decoded strictly
// like a resource, so a misspelt field fails the test instead of adding
// nothing.)
type patch struct {
	Path string `json:"path"`
}

type generator struct {
	Name     string            `json:"name"`
	Behavior string            `json:"behavior,omitempty"`
	Type     string            `json:"type,omitempty"`
	Files    []string          `json:"files,omitempty"`
	Literals []string          `json:"literals,omitempty"`
	Options  *generatorOptions `json:"options,omitempty"`
}

type generatorOptions struct {
	DisableNameSuffixHash bool              `json:"disableNameSuffixHash,omitempty"`
	Labels                map[string]string `json:"labels,omitempty"`
	Annotations           map[string]string `json:"annotations,omitempty"`
}

type image struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// located is a decoded object and where it came from, for messages.
type located[T any] struct {
	Where string
	Obj   *T
}

// dataObject is a ConfigMap or Secret reduced to its keys and string
// values, whether written as a resource or produced by a generator.
type dataObject struct {
	Where string
	Data  map[string]string
}

// base is a kustomization directory loaded: the kustomization and every
// object of its resources (directories among them loaded the same way,
// their objects merged in) and generators, by kind and name.
type base struct {
	Dir             string // the directory, as given to loadBase
	Kustomization   kustomization
	StatefulSets    map[string]located[appsv1.StatefulSet]
	Services        map[string]located[corev1.Service]
	NetworkPolicies map[string]located[networkingv1.NetworkPolicy]
	PDBs            map[string]located[policyv1.PodDisruptionBudget]
	ConfigMaps      map[string]dataObject
	Secrets         map[string]dataObject
	// Patched are the objects the kustomization's patches change, by
	// kind/name (a loaded base does not apply them: build the kustomization
	// for the result).
	Patched map[string]string
	// Deleted are the objects the kustomization's patches delete
	// ("$patch: delete"), by kind/name; a loaded base still holds them.
	Deleted map[string]string
	// Bases are the loaded directories among the resources.
	Bases []*base
}

// root returns the innermost base b is built on (b itself when it has
// none): the one that pins the images.
func (b *base) root() *base {
	for len(b.Bases) > 0 {
		b = b.Bases[0]
	}
	return b
}

// generatorFile splits a generator "files" entry ("key=path" or "path")
// into its key and path.
func generatorFile(entry string) (key, p string) {
	if k, v, ok := strings.Cut(entry, "="); ok {
		return k, v
	}
	return path.Base(entry), entry
}

// listedFiles returns the files the kustomization names: resources that
// are not directories, patches and generator files, as slash paths
// relative to the kustomization's directory dir.
func (k kustomization) listedFiles(dir string) []string {
	var out []string
	for _, r := range k.Resources {
		if !isDir(filepath.Join(dir, filepath.FromSlash(r))) {
			out = append(out, r)
		}
	}
	for _, p := range k.Patches {
		out = append(out, p.Path)
	}
	for _, g := range append(append([]generator(nil), k.ConfigMapGenerator...), k.SecretGenerator...) {
		for _, f := range g.Files {
			_, p := generatorFile(f)
			out = append(out, p)
		}
	}
	return out
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// filesUnder returns every regular file under dir as slash paths relative
// to dir, sorted, except dot files (.gitignore).
func filesUnder(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out, err
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitYAML splits a multi-document YAML file into its non-empty documents
// (a document holding only comments is dropped), with their 1-based index.
func splitYAML(data []byte) (docs [][]byte, index []int, err error) {
	for i, d := range docSeparator.Split(string(data), -1) {
		var v any
		if err := yaml.Unmarshal([]byte(d), &v); err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if v == nil {
			continue
		}
		docs = append(docs, []byte(d))
		index = append(index, i+1)
	}
	return docs, index, nil
}

// wantAPIVersion is the apiVersion each supported kind must carry.
var wantAPIVersion = map[string]string{
	"StatefulSet":         "apps/v1",
	"Service":             "v1",
	"ConfigMap":           "v1",
	"Secret":              "v1",
	"NetworkPolicy":       "networking.k8s.io/v1",
	"PodDisruptionBudget": "policy/v1",
}

// loadBase reads dir/kustomization.yaml and every file it lists, decoding
// each YAML document strictly (unknown or duplicate fields are errors) into
// its Kubernetes API type by kind. Generated ConfigMaps and Secrets are
// built from their files and literals. It returns every problem found
// (missing or unlisted files, decode errors, unsupported kinds, duplicate
// names) in one error.
func loadBase(dir string) (*base, error) {
	b := &base{
		Dir:             dir,
		StatefulSets:    map[string]located[appsv1.StatefulSet]{},
		Services:        map[string]located[corev1.Service]{},
		NetworkPolicies: map[string]located[networkingv1.NetworkPolicy]{},
		PDBs:            map[string]located[policyv1.PodDisruptionBudget]{},
		Patched:         map[string]string{},
		Deleted:         map[string]string{},
		ConfigMaps:      map[string]dataObject{},
		Secrets:         map[string]dataObject{},
	}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	rel := func(name string) string { return filepath.ToSlash(filepath.Join(dir, filepath.FromSlash(name))) }

	kpath := rel("kustomization.yaml")
	kdata, err := os.ReadFile(kpath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (kubectl apply -k needs it)", kpath, err)
	}
	if err := yaml.UnmarshalStrict(kdata, &b.Kustomization); err != nil {
		return nil, fmt.Errorf("%s: strict decoding failed: %w (a field the test's kustomization struct lacks must be added there)", kpath, err)
	}
	k := b.Kustomization
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		fail("%s: apiVersion/kind are %q/%q, want kustomize.config.k8s.io/v1beta1/Kustomization", kpath, k.APIVersion, k.Kind)
	}

	// The kustomization lists exactly the directory's files.
	present, err := filesUnder(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	isPresent := map[string]bool{}
	for _, f := range present {
		isPresent[f] = true
	}
	listed := map[string]bool{"kustomization.yaml": true}
	for _, f := range k.listedFiles(dir) {
		clean := path.Clean(f)
		if listed[clean] {
			fail("%s: %q is listed twice", kpath, f)
		}
		listed[clean] = true
		if !isPresent[clean] {
			fail("%s lists %q, which is not a file in %s", kpath, f, dir)
		}
	}
	for _, f := range present {
		if !listed[f] {
			fail("%s is not listed in %s (add it to resources or a generator's files, or delete it)", rel(f), kpath)
		}
	}

	// Resources, decoded strictly by kind; a directory is a base of its own.
	seen := map[string]string{}
	for _, r := range k.Resources {
		if isDir(rel(r)) {
			sub, err := loadBase(rel(r))
			if err != nil {
				fail("%s: resource %q: %v", kpath, r, err)
				continue
			}
			b.Bases = append(b.Bases, sub)
			mergeInto(b.StatefulSets, sub.StatefulSets, "StatefulSet", seen, fail)
			mergeInto(b.Services, sub.Services, "Service", seen, fail)
			mergeInto(b.NetworkPolicies, sub.NetworkPolicies, "NetworkPolicy", seen, fail)
			mergeInto(b.PDBs, sub.PDBs, "PodDisruptionBudget", seen, fail)
			mergeData(b.ConfigMaps, sub.ConfigMaps, "ConfigMap", seen, fail)
			mergeData(b.Secrets, sub.Secrets, "Secret", seen, fail)
			continue
		}
		if !isPresent[path.Clean(r)] {
			continue // reported above
		}
		if ext := path.Ext(r); ext != ".yaml" && ext != ".yml" {
			fail("%s: resource %q is not a .yaml file", kpath, r)
			continue
		}
		data, err := os.ReadFile(rel(r))
		if err != nil {
			fail("%s: %v", rel(r), err)
			continue
		}
		docs, index, err := splitYAML(data)
		if err != nil {
			fail("%s: %v", rel(r), err)
			continue
		}
		if len(docs) == 0 {
			fail("%s: no YAML document in it", rel(r))
		}
		for i, doc := range docs {
			where := fmt.Sprintf("%s (document %d)", rel(r), index[i])
			var tm struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				fail("%s: %v", where, err)
				continue
			}
			where = fmt.Sprintf("%s, %s %q", where, tm.Kind, tm.Metadata.Name)
			if want, ok := wantAPIVersion[tm.Kind]; !ok {
				fail("%s: kind %q is not one the test decodes (%s); add it to loadBase", where, tm.Kind, strings.Join(keysOf(wantAPIVersion), ", "))
				continue
			} else if tm.APIVersion != want {
				fail("%s: apiVersion %q, want %q", where, tm.APIVersion, want)
			}
			if tm.Metadata.Name == "" {
				fail("%s: metadata.name is empty", where)
				continue
			}
			id := tm.Kind + "/" + tm.Metadata.Name
			if prev, dup := seen[id]; dup {
				fail("%s: %s is also defined in %s", where, id, prev)
				continue
			}
			seen[id] = where
			var derr error
			switch tm.Kind {
			case "StatefulSet":
				o := &appsv1.StatefulSet{}
				if derr = yaml.UnmarshalStrict(doc, o); derr == nil {
					b.StatefulSets[o.Name] = located[appsv1.StatefulSet]{where, o}
				}
			case "NetworkPolicy":
				o := &networkingv1.NetworkPolicy{}
				if derr = yaml.UnmarshalStrict(doc, o); derr == nil {
					b.NetworkPolicies[o.Name] = located[networkingv1.NetworkPolicy]{where, o}
				}
			case "PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				if derr = yaml.UnmarshalStrict(doc, o); derr == nil {
					b.PDBs[o.Name] = located[policyv1.PodDisruptionBudget]{where, o}
				}
			case "Service":
				o := &corev1.Service{}
				if derr = yaml.UnmarshalStrict(doc, o); derr == nil {
					b.Services[o.Name] = located[corev1.Service]{where, o}
				}
			case "ConfigMap":
				o := &corev1.ConfigMap{}
				if derr = yaml.UnmarshalStrict(doc, o); derr == nil {
					d := map[string]string{}
					for key, v := range o.Data {
						d[key] = v
					}
					for key, v := range o.BinaryData {
						d[key] = string(v)
					}
					b.ConfigMaps[o.Name] = dataObject{where, d}
				}
			case "Secret":
				o := &corev1.Secret{}
				if derr = yaml.UnmarshalStrict(doc, o); derr == nil {
					d := map[string]string{}
					for key, v := range o.Data {
						d[key] = string(v)
					}
					for key, v := range o.StringData {
						d[key] = v
					}
					b.Secrets[o.Name] = dataObject{where, d}
				}
			}
			if derr != nil {
				fail("%s: strict decoding into the Kubernetes %s type failed: %v", where, tm.Kind, derr)
			}
		}
	}

	// Patches: strategic merge patches of objects the resources define,
	// each document decoded strictly into its kind (kustomize's "$patch"
	// directives aside).
	for _, p := range k.Patches {
		if !isPresent[path.Clean(p.Path)] {
			continue // reported above
		}
		data, err := os.ReadFile(rel(p.Path))
		if err != nil {
			fail("%s: %v", rel(p.Path), err)
			continue
		}
		docs, index, err := splitYAML(data)
		if err != nil {
			fail("%s: %v", rel(p.Path), err)
			continue
		}
		if len(docs) == 0 {
			fail("%s: no YAML document in it", rel(p.Path))
		}
		for i, doc := range docs {
			where := fmt.Sprintf("%s (document %d)", rel(p.Path), index[i])
			if err := decodePatch(doc, seen); err != nil {
				fail("%s: %v", where, err)
				continue
			}
			var tm struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Patch string `json:"$patch"`
			}
			_ = yaml.Unmarshal(doc, &tm)
			b.Patched[tm.Kind+"/"+tm.Metadata.Name] = where
			if tm.Patch == "delete" {
				b.Deleted[tm.Kind+"/"+tm.Metadata.Name] = where
			}
		}
	}

	// Generated ConfigMaps and Secrets.
	gen := func(kind string, gs []generator, into map[string]dataObject) {
		for i, g := range gs {
			where := fmt.Sprintf("%s: %s[%d] %q", kpath, map[string]string{"ConfigMap": "configMapGenerator", "Secret": "secretGenerator"}[kind], i, g.Name)
			if g.Name == "" {
				fail("%s: name is empty", where)
				continue
			}
			prev, exists := seen[kind+"/"+g.Name]
			switch g.Behavior {
			case "", "create":
				if exists {
					fail("%s: %s %q is also defined in %s", where, kind, g.Name, prev)
					continue
				}
			case "replace", "merge":
				if !exists {
					fail("%s: behavior %s, but no base defines %s %q", where, g.Behavior, kind, g.Name)
					continue
				}
			default:
				fail("%s: behavior %q is none of create, replace, merge", where, g.Behavior)
				continue
			}
			seen[kind+"/"+g.Name] = where
			d := map[string]string{}
			if g.Behavior == "merge" {
				for k, v := range into[g.Name].Data {
					d[k] = v
				}
			}
			for _, f := range g.Files {
				key, p := generatorFile(f)
				data, err := os.ReadFile(rel(p))
				if err != nil {
					fail("%s: file %q: %v", where, f, err)
					continue
				}
				d[key] = string(data)
			}
			for _, l := range g.Literals {
				key, v, ok := strings.Cut(l, "=")
				if !ok {
					fail("%s: literal %q is not key=value", where, l)
					continue
				}
				d[key] = v
			}
			into[g.Name] = dataObject{where, d}
		}
	}
	gen("ConfigMap", k.ConfigMapGenerator, b.ConfigMaps)
	gen("Secret", k.SecretGenerator, b.Secrets)

	if len(problems) > 0 {
		return b, fmt.Errorf("%s: %d problem(s):\n  %s", dir, len(problems), strings.Join(problems, "\n  "))
	}
	return b, nil
}

// decodePatch decodes one document of a strategic merge patch strictly
// into the Kubernetes type of its kind, after dropping kustomize's
// directives ("$patch: delete", ...), and checks that it names an object
// of the resources (seen, by kind/name).
func decodePatch(doc []byte, seen map[string]string) error {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return err
	}
	var strip func(v any) any
	strip = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k := range x {
				if strings.HasPrefix(k, "$") {
					delete(x, k)
				} else {
					x[k] = strip(x[k])
				}
			}
		case []any:
			for i := range x {
				x[i] = strip(x[i])
			}
		}
		return v
	}
	clean, err := yaml.Marshal(strip(v))
	if err != nil {
		return err
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(clean, &tm); err != nil {
		return err
	}
	if want, ok := wantAPIVersion[tm.Kind]; !ok {
		return fmt.Errorf("patch of kind %q, not one the test decodes (%s)", tm.Kind, strings.Join(keysOf(wantAPIVersion), ", "))
	} else if tm.APIVersion != want {
		return fmt.Errorf("patch of %s %q: apiVersion %q, want %q", tm.Kind, tm.Metadata.Name, tm.APIVersion, want)
	}
	if _, ok := seen[tm.Kind+"/"+tm.Metadata.Name]; !ok {
		return fmt.Errorf("patch of %s %q, which no resource defines", tm.Kind, tm.Metadata.Name)
	}
	var obj any
	switch tm.Kind {
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "Service":
		obj = &corev1.Service{}
	case "NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	case "PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "Secret":
		obj = &corev1.Secret{}
	}
	if err := yaml.UnmarshalStrict(clean, obj); err != nil {
		return fmt.Errorf("patch of %s %q: strict decoding into the Kubernetes %s type failed: %w", tm.Kind, tm.Metadata.Name, tm.Kind, err)
	}
	return nil
}

// mergeInto adds the objects of a sub-base; a name defined twice is a
// problem.
func mergeInto[T any](into, from map[string]located[T], kind string, seen map[string]string, fail func(string, ...any)) {
	for name, o := range from {
		if prev, dup := seen[kind+"/"+name]; dup {
			fail("%s: %s/%s is also defined in %s", o.Where, kind, name, prev)
			continue
		}
		seen[kind+"/"+name] = o.Where
		into[name] = o
	}
}

// mergeData is mergeInto for ConfigMaps and Secrets.
func mergeData(into, from map[string]dataObject, kind string, seen map[string]string, fail func(string, ...any)) {
	for name, o := range from {
		if prev, dup := seen[kind+"/"+name]; dup {
			fail("%s: %s/%s is also defined in %s", o.Where, kind, name, prev)
			continue
		}
		seen[kind+"/"+name] = o.Where
		into[name] = o
	}
}

// selects reports whether selector (non-empty) matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// describePorts lists a container's ports for messages: "http=8080, ...".
func describePorts(c corev1.Container) string {
	var parts []string
	for _, p := range c.Ports {
		parts = append(parts, fmt.Sprintf("%s=%d", p.Name, p.ContainerPort))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
