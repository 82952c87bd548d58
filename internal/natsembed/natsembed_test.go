package natsembed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestNKeyPublic(t *testing.T) {
	dir := t.TempDir()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	want, _ := kp.PublicKey()
	good := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(good, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := NKeyPublic(good); err != nil || got != want {
		t.Fatalf("NKeyPublic = %q, %v; want %q", got, err, want)
	}

	// A seed that is not a user's, garbage and a missing file are errors
	// that never quote the file.
	akp, _ := nkeys.CreateAccount()
	aseed, _ := akp.Seed()
	for name, content := range map[string]string{"account.nk": string(aseed), "garbage.nk": "SUnot-a-seed-but-secret"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := NKeyPublic(path)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), content) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error quotes the file: %v", name, err)
		}
	}
	if _, err := NKeyPublic(filepath.Join(dir, "missing.nk")); err == nil {
		t.Error("a missing file is accepted")
	}
}
