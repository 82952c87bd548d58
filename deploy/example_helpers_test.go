package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/dbsync/dbsync/test/testenv"
)

// overlayDir is the example overlay, relative to this package.
const overlayDir = "overlays/example"

// exampleSecrets are the values exampleApp puts in the overlay's secret
// files.
type exampleSecrets struct {
	MysqlPassword             string
	ProducerSeed, ProducerPub string
	ConsumerSeed, ConsumerPub string
	PKI                       *testenv.PKI
}

// exampleApp loads the overlay exampleDir made: the whole application as
// `kubectl apply -k` would see it. It fails the test when the overlay does
// not load.
func exampleApp(t *testing.T) (*base, exampleSecrets) {
	t.Helper()
	dir, sec := exampleDir(t)
	b, err := loadBase(filepath.Join(dir, overlayDir))
	if err != nil {
		t.Fatalf("the example overlay with its secret files filled in: %v", err)
	}
	return b, sec
}

// exampleDir copies base/ and overlays/example/ to a temporary directory
// and creates every file the overlay's generators read (a test PKI's
// certificates, fresh nkeys, a random password). It returns the directory
// (holding base/ and overlays/example/) and the values written.
func exampleDir(t *testing.T) (string, exampleSecrets) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{baseDir, overlayDir} {
		files, err := filesUnder(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			copyFile(t, filepath.Join(d, f), filepath.Join(dir, d, f))
		}
	}
	sec := exampleSecrets{PKI: testenv.NewPKI(t)}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	sec.MysqlPassword = "pw-" + hex.EncodeToString(buf)
	sec.ProducerSeed, sec.ProducerPub = newUserNKey(t)
	sec.ConsumerSeed, sec.ConsumerPub = newUserNKey(t)

	secrets := filepath.Join(dir, overlayDir, "secrets")
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(secrets, 0o755); err != nil {
		t.Fatal(err)
	}
	write("mysql-password", sec.MysqlPassword+"\n")
	write("producer.nk", sec.ProducerSeed+"\n")
	write("producer.pub", sec.ProducerPub+"\n")
	write("consumer.nk", sec.ConsumerSeed+"\n")
	write("consumer.pub", sec.ConsumerPub+"\n")
	for name, src := range map[string]string{
		"mysql-ca.crt": sec.PKI.CA, "ca.crt": sec.PKI.CA, "nats.crt": sec.PKI.ServerCert, "nats.key": sec.PKI.ServerKey,
	} {
		copyFile(t, src, filepath.Join(secrets, name))
	}
	return dir, sec
}

// newUserNKey returns a fresh user nkey: its seed and public key.
func newUserNKey(t *testing.T) (seed, pub string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	s, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	p, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return string(s), p
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
