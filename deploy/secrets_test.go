package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestBaseCreatesNoSecret checks that applying the base can never replace
// a Secret the user made: it defines and generates none. The example
// overlay generates every Secret and ConfigMap the base needs but does not
// define (checked with their keys by TestBaseWiring), from files under
// secrets/ that git ignores, with hashed names.
func TestBaseCreatesNoSecret(t *testing.T) {
	b, err := loadBase(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range b.Secrets {
		t.Errorf("%s: Secret %q: the base must not create Secrets (applying it would overwrite the user's); reference it by name and generate it in an overlay", o.Where, name)
	}

	app, _ := exampleApp(t)
	k := app.Kustomization
	if len(k.Resources) != 1 || k.Resources[0] != "../../base" {
		t.Errorf("%s/kustomization.yaml: resources %q, want only ../../base", overlayDir, k.Resources)
	}
	if len(k.Images) > 0 {
		t.Errorf("%s/kustomization.yaml: images are set in %s/kustomization.yaml only", overlayDir, baseDir)
	}
	var generated []string
	for _, g := range append(append([]generator(nil), k.SecretGenerator...), k.ConfigMapGenerator...) {
		if len(g.Literals) > 0 {
			t.Errorf("%s/kustomization.yaml: generator %q has literals; secrets come from files under secrets/, never from the kustomization", overlayDir, g.Name)
		}
		if g.Options != nil && g.Options.DisableNameSuffixHash {
			t.Errorf("%s/kustomization.yaml: generator %q disables the name hash: it could replace a Secret of the same name, and a change would not roll the pods", overlayDir, g.Name)
		}
		for _, f := range g.Files {
			_, p := generatorFile(f)
			generated = append(generated, p)
			if !strings.HasPrefix(p, "secrets/") {
				t.Errorf("%s/kustomization.yaml: generator %q reads %q, outside secrets/ (the git-ignored directory)", overlayDir, g.Name, p)
			}
		}
	}
	for _, name := range keysOf(app.Secrets) {
		if _, inBase := b.Secrets[name]; inBase {
			t.Errorf("Secret %q is defined by the base", name)
		}
	}

	// git ignores the secret files, and only them.
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is not on PATH; it is needed to check that the overlay's secret files are ignored: %v", err)
	}
	for _, p := range generated {
		f := filepath.Join(overlayDir, filepath.FromSlash(p))
		if err := exec.Command(git, "check-ignore", "-q", f).Run(); err != nil {
			t.Errorf("git does not ignore %s (%v): a filled-in secret could be committed; add it to %s/secrets/.gitignore", f, err, overlayDir)
		}
	}
	if err := exec.Command(git, "check-ignore", "-q", filepath.Join(overlayDir, "kustomization.yaml")).Run(); err == nil {
		t.Errorf("git ignores %s/kustomization.yaml", overlayDir)
	}
}

var (
	// tagged matches an image reference with a tag or digest.
	tagged = regexp.MustCompile(`^[^@]*:[^/]+$|@`)
	// versionTag is a pinned version: 1.2.3, v1.2.3, 2.12.1-alpine.
	versionTag = regexp.MustCompile(`^v?\d+\.\d+\.\d+([-+.][0-9A-Za-z.-]+)?$`)
)

// TestImagesPinned checks that every container image is named without a
// tag in the manifests and gets a pinned version in exactly one place, the
// base's kustomization.yaml images:, and that nothing says :latest.
func TestImagesPinned(t *testing.T) {
	b, err := loadBase(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	pinned := map[string]image{}
	for _, im := range b.Kustomization.Images {
		if _, dup := pinned[im.Name]; dup {
			t.Errorf("%s/kustomization.yaml: image %q is listed twice", baseDir, im.Name)
		}
		pinned[im.Name] = im
		switch {
		case im.Digest != "":
		case im.NewTag == "" || im.NewTag == "latest" || !versionTag.MatchString(im.NewTag):
			t.Errorf("%s/kustomization.yaml: image %q has newTag %q; pin a version such as 1.2.3 (or a digest)", baseDir, im.Name, im.NewTag)
		}
	}
	used := map[string]bool{}
	for _, name := range keysOf(b.StatefulSets) {
		ls := b.StatefulSets[name]
		pod := ls.Obj.Spec.Template.Spec
		for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
			if tagged.MatchString(c.Image) {
				t.Errorf("%s, container %q: image %q carries a tag or digest; name it bare and pin it in %s/kustomization.yaml images: (one place)", ls.Where, c.Name, c.Image, baseDir)
				continue
			}
			if _, ok := pinned[c.Image]; !ok {
				t.Errorf("%s, container %q: image %q has no entry in %s/kustomization.yaml images:, so it would run whatever :latest is", ls.Where, c.Name, c.Image, baseDir)
			}
			used[c.Image] = true
		}
	}
	for name := range pinned {
		if !used[name] {
			t.Errorf("%s/kustomization.yaml: images: lists %q, which no container uses", baseDir, name)
		}
	}

	files := []string{filepath.Join(repoRoot(t), "Dockerfile")}
	for _, d := range []string{baseDir, overlayDir, haOverlayDir, kafkaOverlayDir} {
		fs, err := filesUnder(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			files = append(files, filepath.Join(d, f))
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`:latest\b`).Match(data) {
			t.Errorf("%s says :latest; pin a version", f)
		}
	}
}

// TestNoSecretInRepository checks that no file of the deployment holds a
// private key, an nkey seed or a Secret's data.
func TestNoSecretInRepository(t *testing.T) {
	seed := regexp.MustCompile(`\bS[UACONP][A-Z2-7]{56}\b`)
	for _, d := range []string{baseDir, overlayDir, haOverlayDir, kafkaOverlayDir} {
		fs, err := filesUnder(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			p := filepath.Join(d, f)
			if strings.HasPrefix(f, "secrets/") {
				continue // the user's own, git-ignored (TestBaseCreatesNoSecret)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), "PRIVATE KEY-----") {
				t.Errorf("%s holds a private key", p)
			}
			if seed.Match(data) {
				t.Errorf("%s holds an nkey seed", p)
			}
		}
	}
}
