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
	ConfigMapGenerator []generator `json:"configMapGenerator,omitempty"`
	SecretGenerator    []generator `json:"secretGenerator,omitempty"`
	Images             []image     `json:"images,omitempty"`
}

type labelSet struct {
	Pairs            map[string]string `json:"pairs"`
	IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	IncludeTemplates bool              `json:"includeTemplates,omitempty"`
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
	ConfigMaps      map[string]dataObject
	Secrets         map[string]dataObject
	// Bases are the loaded directories among the resources.
	Bases []*base
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
// are not directories and generator files, as slash paths relative to the
// kustomization's directory dir.
func (k kustomization) listedFiles(dir string) []string {
	var out []string
	for _, r := range k.Resources {
		if !isDir(filepath.Join(dir, filepath.FromSlash(r))) {
			out = append(out, r)
		}
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
	"StatefulSet":   "apps/v1",
	"Service":       "v1",
	"ConfigMap":     "v1",
	"Secret":        "v1",
	"NetworkPolicy": "networking.k8s.io/v1",
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

	// Generated ConfigMaps and Secrets.
	gen := func(kind string, gs []generator, into map[string]dataObject) {
		for i, g := range gs {
			where := fmt.Sprintf("%s: %s[%d] %q", kpath, map[string]string{"ConfigMap": "configMapGenerator", "Secret": "secretGenerator"}[kind], i, g.Name)
			if g.Name == "" {
				fail("%s: name is empty", where)
				continue
			}
			if _, dup := seen[kind+"/"+g.Name]; dup {
				fail("%s: %s %q is also defined in %s", where, kind, g.Name, seen[kind+"/"+g.Name])
				continue
			}
			seen[kind+"/"+g.Name] = where
			d := map[string]string{}
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
