// Package deploy holds no code: it tests the container image recipe
// (../Dockerfile, ../.dockerignore) and the Kubernetes manifests in base/
// and overlays/ (example/; ha/: a NATS cluster and standby producers;
// kafka/: the producer publishing to an existing Kafka cluster, no NATS).
//
// There is no Docker engine or cluster in the test environment, so the
// tests check what can be checked without one: the Dockerfile's structure,
// the binary its build line produces (static, and it runs), every manifest
// decoded strictly into its Kubernetes API type, and the wiring between
// the pieces (config path and ConfigMap, data directory and volume, probes
// and port, Secret references, environment names, broker address and
// Service).
package deploy

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/dbsync/dbsync/pkg/config"
)

// baseDir is the kustomize base, relative to this package.
const baseDir = "base"

// repoRoot returns the module root (the Docker build context).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

func loadDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	df, err := parseDockerfile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	return df
}

// dockerBuilds returns every `go build` of the Dockerfile's build stages.
func dockerBuilds(t *testing.T, df *dockerfile) []goBuild {
	t.Helper()
	var all []goBuild
	for _, s := range df.Stages[:len(df.Stages)-1] {
		bs, err := goBuilds(s)
		if err != nil {
			t.Fatalf("%s: %v", df.Path, err)
		}
		all = append(all, bs...)
	}
	return all
}

func TestDockerfile(t *testing.T) {
	df := loadDockerfile(t)
	if len(df.Stages) < 2 {
		t.Fatalf("%s: %d stage(s); want a multi-stage build (a Go build stage, then a small final image without the toolchain)", df.Path, len(df.Stages))
	}
	build, fin := df.Stages[0], df.final()

	// The build stage's Go is at least the go.mod's.
	img, tag, _ := strings.Cut(build.From, ":")
	if img != "golang" && img != "docker.io/library/golang" {
		t.Errorf("%s:%d: build stage FROM %s; want the official golang image", df.Path, build.Line, build.From)
	} else {
		mod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(mod)
		if m == nil {
			t.Fatalf("go.mod has no go directive")
		}
		want, have := versionNumbers(string(m[1])), versionNumbers(tag)
		if len(have) < 2 {
			t.Errorf("%s:%d: FROM %s: the tag names no Go version (want golang:%d.%d-bookworm or newer)", df.Path, build.Line, build.From, want[0], want[1])
		} else if n := min(len(have), len(want)); slices.Compare(have[:n], want[:n]) < 0 {
			t.Errorf("%s:%d: FROM %s is older than go.mod's go %s", df.Path, build.Line, build.From, m[1])
		}
	}
	if strings.HasPrefix(fin.From, "golang") {
		t.Errorf("%s:%d: the final stage FROM %s ships the Go toolchain; use gcr.io/distroless/static-debian12:nonroot", df.Path, fin.Line, fin.From)
	}

	// Every go build is static (CGO_ENABLED=0) and one builds the producer.
	builds := dockerBuilds(t, df)
	var producer *goBuild
	for i, b := range builds {
		if v, ok := envValue(b.Env, "CGO_ENABLED"); !ok || v != "0" {
			t.Errorf("%s:%d: go build %s without CGO_ENABLED=0 in front: the binary would need libc, which the final image lacks", df.Path, b.Line, strings.Join(b.Args[1:], " "))
		}
		if b.Output == "" {
			t.Errorf("%s:%d: go build without -o", df.Path, b.Line)
		}
		if b.Pkg == "./cmd/producer" {
			producer = &builds[i]
		}
	}
	if producer == nil {
		t.Fatalf("%s: no RUN line runs `go build ... ./cmd/producer` in a build stage", df.Path)
	}

	// The final stage: non-root numeric USER, WORKDIR /data, exec-form
	// ENTRYPOINT running the producer built above, exec-form CMD.
	if in, ok := fin.last("USER"); !ok {
		t.Errorf("%s: the final stage sets no USER; it would run as root", df.Path)
	} else if _, err := parseUser(in.Args); err != nil {
		t.Errorf("%s:%d: %v", df.Path, in.Line, err)
	}
	if in, ok := fin.last("WORKDIR"); !ok || in.Args != "/data" {
		t.Errorf("%s: the final stage's WORKDIR is %q, want /data", df.Path, in.Args)
	}
	in, ok := fin.last("ENTRYPOINT")
	if !ok {
		t.Fatalf("%s: the final stage has no ENTRYPOINT", df.Path)
	}
	entry, err := execForm(in)
	if err != nil {
		t.Fatalf("%s: %v", df.Path, err)
	}
	if cmd, ok := fin.last("CMD"); ok {
		if _, err := execForm(cmd); err != nil {
			t.Errorf("%s: %v", df.Path, err)
		}
	}
	// ENTRYPOINT[0] is where a COPY --from=<build stage> put the producer.
	copied := false
	for _, cp := range fin.all("COPY") {
		f := strings.Fields(cp.Args)
		var from string
		var paths []string
		for _, w := range f {
			if v, ok := strings.CutPrefix(w, "--from="); ok {
				from = v
			} else if !strings.HasPrefix(w, "--") {
				paths = append(paths, w)
			}
		}
		if len(paths) == 2 && paths[1] == entry[0] {
			src := df.stageByName(from)
			if src == nil || src == fin {
				t.Errorf("%s:%d: COPY to %s is not --from a build stage", df.Path, cp.Line, entry[0])
			} else if paths[0] != producer.Output {
				t.Errorf("%s:%d: COPY %s %s, but the producer is built to %s (line %d)", df.Path, cp.Line, paths[0], paths[1], producer.Output, producer.Line)
			}
			copied = true
		}
	}
	if !copied {
		t.Errorf("%s: ENTRYPOINT %q runs %s, which no COPY --from=<build stage> puts there", df.Path, entry, entry[0])
	}
	if ports := exposedPorts(df); !slices.Contains(ports, mustPort(t, config.DefaultHTTPListen)) {
		t.Errorf("%s: the final stage EXPOSEs %v; want the operations port of HTTP.Listen %q", df.Path, ports, config.DefaultHTTPListen)
	}
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	p, err := listenPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDockerfileBuildIsStatic runs every `go build` of the Dockerfile as it
// is written (same environment assignments and flags, output redirected to
// a temporary directory) from the build context, then checks the binaries
// are static and stripped and that the producer runs: a missing -config
// file exits 2 naming the path.
func TestDockerfileBuildIsStatic(t *testing.T) {
	root := repoRoot(t)
	df := loadDockerfile(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	out := t.TempDir()
	var producerBin string
	for _, b := range dockerBuilds(t, df) {
		args, bin := b.withOutput(out)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), b.Env...)
		output, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s:%d: %s go %s failed: %v\n%s", df.Path, b.Line, strings.Join(b.Env, " "), strings.Join(args, " "), err, output)
		}
		checkStatic(t, bin)
		if b.Pkg == "./cmd/producer" {
			producerBin = bin
		}
	}
	if producerBin == "" {
		t.Fatalf("%s: no go build of ./cmd/producer", df.Path)
	}

	cmd := exec.Command(producerBin, "-config", "/nonexistent")
	cmd.Dir = out
	cmd.Env = []string{} // no DBSYNC_* overrides from the test's environment
	output, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("producer -config /nonexistent: %v, want exit status 2; output:\n%s", err, output)
	}
	if !strings.Contains(string(output), "/nonexistent") {
		t.Errorf("producer -config /nonexistent: the message does not name the path:\n%s", output)
	}
}

// checkStatic fails unless bin is an ELF executable without an interpreter
// or shared libraries (it runs on distroless/static) and without symbol and
// DWARF tables (-ldflags="-s -w").
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s is not an ELF binary: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			t.Errorf("%s has a PT_INTERP program header: it is dynamically linked and will not start on distroless/static", bin)
		case elf.PT_DYNAMIC:
			t.Errorf("%s has a PT_DYNAMIC program header: it is dynamically linked", bin)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Errorf("%s: read DT_NEEDED: %v", bin, err)
	}
	if len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v; build with CGO_ENABLED=0", bin, libs)
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(s) != nil {
			t.Errorf("%s has a %s section; -ldflags=\"-s -w\" strips it", bin, s)
		}
	}
}

// TestDockerignoreKeepsSources checks that .dockerignore keeps what the
// build stage needs and drops what it must not send (.git, local state).
func TestDockerignoreKeepsSources(t *testing.T) {
	p := filepath.Join(repoRoot(t), ".dockerignore")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (without it the whole checkout, .git included, is sent to the builder)", err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/"))
		}
	}
	ignored := func(name string) bool {
		for _, pat := range patterns {
			if ok, _ := filepath.Match(pat, name); ok {
				return true
			}
		}
		return false
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd", "pkg", "internal"} {
		if ignored(need) {
			t.Errorf("%s excludes %s, which the build stage needs", p, need)
		}
	}
	for _, drop := range []string{".git", "bin", "data"} {
		if !ignored(drop) {
			t.Errorf("%s does not exclude %s", p, drop)
		}
	}
}

// TestBaseDecodesStrictly loads every file of the base: the kustomization
// lists exactly the directory's files, and every document decodes strictly
// into its Kubernetes type.
func TestBaseDecodesStrictly(t *testing.T) {
	b, err := loadBase(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		kind string
		have []string
		name string
	}{
		{"StatefulSet", keysOf(b.StatefulSets), producerSet},
		{"StatefulSet", keysOf(b.StatefulSets), "dbsync-nats"},
		{"Service", keysOf(b.Services), "dbsync-nats"},
		{"ConfigMap", keysOf(b.ConfigMaps), "dbsync-config"},
		{"ConfigMap", keysOf(b.ConfigMaps), "dbsync-nats-config"},
		{"NetworkPolicy", keysOf(b.NetworkPolicies), "dbsync-default-deny"},
	} {
		if !slices.Contains(want.have, want.name) {
			t.Errorf("%s: no %s %q (have %v)", baseDir, want.kind, want.name, want.have)
		}
	}
}

// TestBaseWiring checks that the pieces of the application (the example
// overlay on the base, its secret files filled in) fit together and fit
// the image (see checkWiring).
func TestBaseWiring(t *testing.T) {
	b, _ := exampleApp(t)
	for _, p := range checkWiring(b, loadDockerfile(t)) {
		t.Error(p)
	}
}

// TestLoadBaseRejectsMistakes checks that loadBase catches an unknown
// field, an unlisted file and a listed file that is missing.
func TestLoadBaseRejectsMistakes(t *testing.T) {
	copyBase := func(t *testing.T) string {
		dir := t.TempDir()
		files, err := filesUnder(baseDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(baseDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	edit := func(t *testing.T, p, old, new string) {
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
		{"unknown field", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "statefulset.yaml"), "terminationGracePeriodSeconds:", "terminationGracePeriod:")
		}, `unknown field "terminationGracePeriod"`},
		{"unlisted file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "extra.yaml"), []byte("kind: Service\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "extra.yaml is not listed"},
		{"missing file", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "nats.yaml")); err != nil {
				t.Fatal(err)
			}
		}, `lists "nats.yaml", which is not a file`},
		{"kustomization typo", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "kustomization.yaml"), "resources:", "resource:")
		}, `unknown field "resource"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyBase(t)
			tc.mutate(t, dir)
			_, err := loadBase(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadBase after %s: error %v, want one containing %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestWiringCatchesMistakes breaks the loaded base one way at a time and
// checks that checkWiring reports it, so a green TestBaseWiring means
// something.
func TestWiringCatchesMistakes(t *testing.T) {
	df := loadDockerfile(t)
	dir, _ := exampleDir(t)
	setConfig := func(t *testing.T, b *base, old, new string) {
		cm := b.ConfigMaps["dbsync-config"]
		if !strings.Contains(cm.Data["config.json"], old) {
			t.Fatalf("test setup: config.json has no %q", old)
		}
		cm.Data["config.json"] = strings.Replace(cm.Data["config.json"], old, new, 1)
	}
	secretVolume := func(t *testing.T, b *base, name string) *corev1.SecretVolumeSource {
		for _, v := range b.StatefulSets[producerSet].Obj.Spec.Template.Spec.Volumes {
			if v.Name == name && v.Secret != nil {
				return v.Secret
			}
		}
		t.Fatalf("test setup: no secret volume %q", name)
		return nil
	}
	np := func(t *testing.T, b *base, name string) *networkingv1.NetworkPolicy {
		ls, ok := b.NetworkPolicies[name]
		if !ok {
			t.Fatalf("test setup: no NetworkPolicy %q", name)
		}
		return ls.Obj
	}
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, b *base)
		want   string
	}{
		{"two replicas", func(t *testing.T, b *base) {
			*b.StatefulSets[producerSet].Obj.Spec.Replicas = 2
		}, "spec.replicas is 2"},
		{"short grace period", func(t *testing.T, b *base) {
			*b.StatefulSets[producerSet].Obj.Spec.Template.Spec.TerminationGracePeriodSeconds = 30
		}, "terminationGracePeriodSeconds"},
		{"root allowed", func(t *testing.T, b *base) {
			*b.StatefulSets[producerSet].Obj.Spec.Template.Spec.SecurityContext.RunAsNonRoot = false
		}, "runAsNonRoot"},
		{"no fsGroup", func(t *testing.T, b *base) {
			b.StatefulSets[producerSet].Obj.Spec.Template.Spec.SecurityContext.FSGroup = nil
		}, "fsGroup is unset"},
		{"config elsewhere", func(t *testing.T, b *base) {
			producerOf(t, b).Args = []string{"-config", "/etc/other/config.json"}
		}, "-config /etc/other/config.json is not directly in the mountPath"},
		{"config key missing", func(t *testing.T, b *base) {
			producerOf(t, b).Args = []string{"-config", "/etc/dbsync/dbsync.json"}
		}, `needs key "dbsync.json" in ConfigMap "dbsync-config"`},
		{"invalid config", func(t *testing.T, b *base) {
			setConfig(t, b, `"MQName": "jetstream"`, `"MQName": "kafka"`)
		}, "MQName"},
		{"password in ConfigMap", func(t *testing.T, b *base) {
			setConfig(t, b, `"PasswordFile": "/run/dbsync/secrets/mysql-password"`, `"Password": "secret"`)
		}, "Mysql.Password is set; keep secrets out of the ConfigMap"},
		{"nats token in ConfigMap", func(t *testing.T, b *base) {
			setConfig(t, b, `"NKeySeedFile": "/run/dbsync/secrets/nats.nk"`, `"Token": "secret"`)
		}, "JetStream.Auth.Token is set"},
		{"no password source", func(t *testing.T, b *base) {
			setConfig(t, b, `"PasswordFile": "/run/dbsync/secrets/mysql-password",`, ``)
		}, "the MySQL password must come from a Secret"},
		{"secret file not mounted", func(t *testing.T, b *base) {
			setConfig(t, b, `/run/dbsync/secrets/nats.nk`, `/etc/nats/nats.nk`)
		}, `"/etc/nats/nats.nk" is under no volumeMount`},
		{"secret file not in the secret", func(t *testing.T, b *base) {
			setConfig(t, b, `/run/dbsync/secrets/nats.nk`, `/run/dbsync/secrets/producer.nk`)
		}, `JetStream.Auth.NKeySeedFile: cannot read "/run/dbsync/secrets/producer.nk"`},
		{"secret file in the ConfigMap volume", func(t *testing.T, b *base) {
			setConfig(t, b, `/run/dbsync/secrets/nats.nk`, `/etc/dbsync/config.json`)
		}, `JetStream.Auth.NKeySeedFile "/etc/dbsync/config.json" is not in a Secret volume`},
		{"secret volume key missing", func(t *testing.T, b *base) {
			secretVolume(t, b, "secrets").Items[0].Key = "password"
		}, `names key "password"`},
		{"secret missing", func(t *testing.T, b *base) {
			secretVolume(t, b, "secrets").SecretName = "mysql"
		}, `Secret "mysql"`},
		{"secret readable by others", func(t *testing.T, b *base) {
			m := int32(0o444)
			secretVolume(t, b, "secrets").DefaultMode = &m
		}, "defaultMode must be set without access for others"},
		{"secret mode decimal", func(t *testing.T, b *base) {
			m := int32(440) // 0670: 0440 written as a decimal number
			secretVolume(t, b, "secrets").DefaultMode = &m
		}, "defaultMode must be set without access for others"},
		{"no NATS auth", func(t *testing.T, b *base) {
			setConfig(t, b, `"NKeySeedFile": "/run/dbsync/secrets/nats.nk"`, ``)
		}, "JetStream.Auth is empty"},
		{"NATS without TLS", func(t *testing.T, b *base) {
			setConfig(t, b, `"CA": "/run/dbsync/nats-ca/ca.crt"`, `"Mode": "disabled"`)
			setConfig(t, b, `tls://dbsync-nats`, `nats://dbsync-nats`)
		}, `JetStream.TLS is "disabled"`},
		{"MySQL TLS unverified", func(t *testing.T, b *base) {
			setConfig(t, b, `"Mode": "verify_identity"`, `"Mode": "preferred"`)
		}, `Mysql.TLS.Mode is "preferred"`},
		{"pprof on", func(t *testing.T, b *base) {
			setConfig(t, b, `"Pprof": false`, `"Pprof": true`)
		}, "HTTP.Pprof is on"},
		{"data dir not on the volume", func(t *testing.T, b *base) {
			setConfig(t, b, `"DataDir": "/data"`, `"DataDir": "/var/lib/dbsync"`)
		}, `bolt checkpoint file "/var/lib/dbsync/pos.db"`},
		{"listen port not a container port", func(t *testing.T, b *base) {
			setConfig(t, b, `"Listen": ":8080"`, `"Listen": ":9090"`)
		}, "no container port 9090"},
		{"probe on another port", func(t *testing.T, b *base) {
			producerOf(t, b).LivenessProbe.HTTPGet.Port = intstr.FromString("metrics")
		}, "livenessProbe.httpGet.port metrics"},
		{"readiness path", func(t *testing.T, b *base) {
			producerOf(t, b).ReadinessProbe.HTTPGet.Path = "/healthz"
		}, `readinessProbe.httpGet.path is "/healthz"`},
		{"unknown env var", func(t *testing.T, b *base) {
			c := producerOf(t, b)
			c.Env = append(c.Env, corev1.EnvVar{Name: "DBSYNC_MYSQL_PASSWD", Value: "x"})
		}, "env DBSYNC_MYSQL_PASSWD is not a variable pkg/config reads"},
		{"env secret missing", func(t *testing.T, b *base) {
			c := producerOf(t, b)
			c.Env = append(c.Env, corev1.EnvVar{Name: "DBSYNC_REDIS_PASSWORD", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "redis"}, Key: "password"}}})
		}, `names Secret "redis", which the base does not define`},
		{"broker host", func(t *testing.T, b *base) {
			setConfig(t, b, "tls://dbsync-nats:4222", "tls://nats:4222")
		}, `names host "nats", which is no Service`},
		{"broker port", func(t *testing.T, b *base) {
			setConfig(t, b, "tls://dbsync-nats:4222", "tls://dbsync-nats:4223")
		}, "uses port 4223"},
		{"image user", func(t *testing.T, b *base) {
			*b.StatefulSets[producerSet].Obj.Spec.Template.Spec.SecurityContext.RunAsUser = 1000
		}, "differs from the image's USER 65532"},
		{"no GOMEMLIMIT", func(t *testing.T, b *base) {
			c := producerOf(t, b)
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
		}, "env GOMEMLIMIT is not set"},
		{"GOMEMLIMIT at the limit", func(t *testing.T, b *base) {
			c := producerOf(t, b)
			c.Env[slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })].Value = "512MiB"
		}, "is 100% of the memory limit"},
		{"GOMEMLIMIT from requests", func(t *testing.T, b *base) {
			c := producerOf(t, b)
			c.Env[slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })] = corev1.EnvVar{Name: "GOMEMLIMIT",
				ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: producerContainer, Resource: "requests.memory"}}}
		}, "GOMEMLIMIT must come from the container's own memory limit"},
		{"service selects nothing", func(t *testing.T, b *base) {
			b.Services["dbsync-nats"].Obj.Spec.Selector = map[string]string{"app": "nats"}
		}, "selects no pod template"},
		{"no default deny", func(t *testing.T, b *base) {
			delete(b.NetworkPolicies, "dbsync-default-deny")
		}, "no default-deny NetworkPolicy"},
		{"NATS open to the namespace", func(t *testing.T, b *base) {
			np(t, b, "dbsync-nats").Spec.Ingress[0].From = nil
		}, "an unlabelled pod of the namespace reaches NATS"},
		{"NATS port not admitted", func(t *testing.T, b *base) {
			np(t, b, "dbsync-nats").Spec.Ingress[0].Ports[0].Port = ptrTo(intstr.FromInt32(4223))
		}, "is admitted by no NetworkPolicy ingress rule"},
		{"operations port open", func(t *testing.T, b *base) {
			np(t, b, "dbsync-producer").Spec.Ingress[0].From = nil
		}, "operations port 8080 is reachable from a pod of its own namespace"},
		{"producer egress anywhere", func(t *testing.T, b *base) {
			np(t, b, "dbsync-producer").Spec.Egress[0].Ports = nil
		}, "may connect to port 443 anywhere"},
		{"no DNS", func(t *testing.T, b *base) {
			np(t, b, "dbsync-nats-clients").Spec.Egress = np(t, b, "dbsync-nats-clients").Spec.Egress[:1]
		}, "cannot reach the cluster DNS"},
		{"producer not a NATS client", func(t *testing.T, b *base) {
			delete(b.StatefulSets[producerSet].Obj.Spec.Template.Labels, "dbsync.io/nats-client")
		}, "the producer cannot reach NATS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := loadBase(filepath.Join(dir, overlayDir))
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(t, b)
			problems := checkWiring(b, df)
			for _, p := range problems {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Fatalf("after %q checkWiring reported %d problem(s), none containing %q:\n%s", tc.name, len(problems), tc.want, strings.Join(problems, "\n"))
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

// producerOf returns the producer container of a loaded base.
func producerOf(t *testing.T, b *base) *corev1.Container {
	t.Helper()
	s, ok := b.StatefulSets[producerSet]
	if !ok {
		t.Fatalf("no StatefulSet %q", producerSet)
	}
	cs := s.Obj.Spec.Template.Spec.Containers
	for i := range cs {
		if cs[i].Name == producerContainer {
			return &cs[i]
		}
	}
	t.Fatalf("no container %q in StatefulSet %q", producerContainer, producerSet)
	return nil
}
