package testenv

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/dbsync/dbsync/internal/natsembed"
)

// NATSSecurity is the TLS and authentication a test NATS server (StartNATSWith,
// StartStanWith) requires of its clients.
type NATSSecurity struct {
	// PKI, when set, makes the server present PKI's server certificate
	// (for 127.0.0.1 and localhost) and require TLS of every client.
	PKI *PKI
	// VerifyClients also requires a client certificate of PKI's CA.
	VerifyClients bool
	// Auth lists the users (with passwords and permissions), the token or
	// the nkey users the server accepts.
	Auth natsembed.Auth
	// Operator, when set, runs the server in operator mode: clients
	// authenticate with creds files of Operator.UserCreds (Auth is then
	// ignored).
	Operator *Operator
	// Admin are the options of the helpers' own connections (Conn, stream
	// reads): credentials allowed everything. TLS options are added from
	// PKI.
	Admin []nats.Option
}

func (s NATSSecurity) serverTLS(t testing.TB) *tls.Config {
	if s.PKI == nil {
		return nil
	}
	return s.PKI.ServerTLS(t, s.VerifyClients)
}

func (s NATSSecurity) tune() func(*server.Options) {
	if s.Operator == nil {
		return nil
	}
	return s.Operator.apply
}

// clientOptions are the helpers' connection options: Admin, and the PKI's
// client TLS configuration.
func (s NATSSecurity) clientOptions(t testing.TB) []nats.Option {
	opts := append([]nats.Option(nil), s.Admin...)
	if s.PKI != nil {
		opts = append(opts, nats.Secure(s.PKI.ClientTLS(t)))
	}
	return opts
}

// SecretFile writes content to a new file (mode 0600) in a temp dir and
// returns its path.
func SecretFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatalf("testenv: write %s: %v", path, err)
	}
	return path
}

// RandomSecret returns a random hex string, to use as a password or token
// a test then looks for in errors and logs.
func RandomSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random: %v", err)
	}
	return "s3cr3t-" + hex.EncodeToString(b)
}

// NKeyUser creates a user nkey: the file holding its seed, its public key
// and the seed itself (to look for in output).
func NKeyUser(t testing.TB) (seedFile, publicKey, seed string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("testenv: create an nkey: %v", err)
	}
	s, err := kp.Seed()
	if err != nil {
		t.Fatalf("testenv: nkey seed: %v", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatalf("testenv: nkey public key: %v", err)
	}
	return SecretFile(t, "user.nk", string(s)), pub, string(s)
}

// Operator is a throwaway NATS operator with a system account and one
// account (JetStream enabled, no limits) whose users authenticate with
// creds files.
type Operator struct {
	operator   *jwt.OperatorClaims
	account    nkeys.KeyPair
	accountPub string
	resolver   *server.MemAccResolver
	sysPub     string
}

// NewOperator creates an operator, its system account and the account the
// users of UserCreds belong to.
func NewOperator(t testing.TB) *Operator {
	t.Helper()
	opKP := mustKey(t, nkeys.CreateOperator)
	opPub := mustPub(t, opKP)
	sysKP := mustKey(t, nkeys.CreateAccount)
	accKP := mustKey(t, nkeys.CreateAccount)
	o := &Operator{account: accKP, accountPub: mustPub(t, accKP), resolver: &server.MemAccResolver{}, sysPub: mustPub(t, sysKP)}

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "testenv"
	oc.SystemAccount = o.sysPub
	opJWT, err := oc.Encode(opKP)
	if err != nil {
		t.Fatalf("testenv: operator JWT: %v", err)
	}
	if o.operator, err = jwt.DecodeOperatorClaims(opJWT); err != nil {
		t.Fatalf("testenv: operator JWT: %v", err)
	}

	sc := jwt.NewAccountClaims(o.sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(opKP)
	if err != nil {
		t.Fatalf("testenv: system account JWT: %v", err)
	}
	ac := jwt.NewAccountClaims(o.accountPub)
	ac.Name = "DBSYNC"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := ac.Encode(opKP)
	if err != nil {
		t.Fatalf("testenv: account JWT: %v", err)
	}
	if err := o.resolver.Store(o.sysPub, sysJWT); err != nil {
		t.Fatalf("testenv: store the system account: %v", err)
	}
	if err := o.resolver.Store(o.accountPub, accJWT); err != nil {
		t.Fatalf("testenv: store the account: %v", err)
	}
	return o
}

// UserCreds creates a user of the account, limited by perms (nil: allowed
// everything), and returns the path of its creds file and the file's
// content (to look for in output).
func (o *Operator) UserCreds(t testing.TB, name string, perms *natsembed.Permissions) (path, content string) {
	t.Helper()
	ukp := mustKey(t, nkeys.CreateUser)
	uc := jwt.NewUserClaims(mustPub(t, ukp))
	uc.Name = name
	if perms != nil {
		uc.Pub.Allow.Add(perms.PublishAllow...)
		uc.Pub.Deny.Add(perms.PublishDeny...)
		uc.Sub.Allow.Add(perms.SubscribeAllow...)
		uc.Sub.Deny.Add(perms.SubscribeDeny...)
	}
	userJWT, err := uc.Encode(o.account)
	if err != nil {
		t.Fatalf("testenv: user JWT: %v", err)
	}
	seed, err := ukp.Seed()
	if err != nil {
		t.Fatalf("testenv: user seed: %v", err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatalf("testenv: creds: %v", err)
	}
	return SecretFile(t, name+".creds", string(creds)), string(creds)
}

func (o *Operator) apply(opts *server.Options) {
	opts.TrustedOperators = []*jwt.OperatorClaims{o.operator}
	opts.AccountResolver = o.resolver
	opts.SystemAccount = o.sysPub
	opts.Users, opts.Nkeys, opts.Authorization = nil, nil, ""
}

func mustKey(t testing.TB, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatalf("testenv: create an nkey: %v", err)
	}
	return kp
}

func mustPub(t testing.TB, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatalf("testenv: nkey public key: %v", err)
	}
	return pub
}

// Credentials are what a NATS client authenticates with (the fields of
// mq.NATSAuth and client.Config).
type Credentials struct {
	User, Password, Token, NKeySeedFile, CredsFile string
}

// NATSAuthCase is a server set-up for one kind of authentication with the
// credentials of a producer (allowed everything), of a consumer (not
// allowed to publish to the producer's subjects; zero for "token", which
// has no per-user permissions) and wrong ones.
type NATSAuthCase struct {
	// Kind is "user/password", "token", "nkey" or "creds".
	Kind     string
	Security NATSSecurity
	Producer Credentials
	Consumer Credentials
	Wrong    Credentials
	// Secrets are every password, token, seed and creds file content of
	// the case, which no error, log line or output may show.
	Secrets []string
}

// NATSAuthCases returns one NATSAuthCase per kind of authentication, each
// with TLS from pki when it is not nil. A consumer may not publish to
// producerSubjects (e.g. "dbsync.>").
func NATSAuthCases(t testing.TB, pki *PKI, producerSubjects ...string) []NATSAuthCase {
	t.Helper()
	consumerPerms := &natsembed.Permissions{PublishDeny: producerSubjects}
	var cases []NATSAuthCase

	adminPw, prodPw, consPw, wrongPw := RandomSecret(t), RandomSecret(t), RandomSecret(t), RandomSecret(t)
	cases = append(cases, NATSAuthCase{
		Kind: "user/password",
		Security: NATSSecurity{PKI: pki, Auth: natsembed.Auth{Users: []natsembed.User{
			{Name: "admin", Password: adminPw}, {Name: "producer", Password: prodPw},
			{Name: "consumer", Password: consPw, Permissions: consumerPerms},
		}}, Admin: []nats.Option{nats.UserInfo("admin", adminPw)}},
		Producer: Credentials{User: "producer", Password: prodPw},
		Consumer: Credentials{User: "consumer", Password: consPw},
		Wrong:    Credentials{User: "producer", Password: wrongPw},
		Secrets:  []string{adminPw, prodPw, consPw, wrongPw},
	})

	token, wrongToken := RandomSecret(t), RandomSecret(t)
	cases = append(cases, NATSAuthCase{
		Kind:     "token",
		Security: NATSSecurity{PKI: pki, Auth: natsembed.Auth{Token: token}, Admin: []nats.Option{nats.Token(token)}},
		Producer: Credentials{Token: token},
		Wrong:    Credentials{Token: wrongToken},
		Secrets:  []string{token, wrongToken},
	})

	adminSeedFile, adminPub, adminSeed := NKeyUser(t)
	prodSeedFile, prodPub, prodSeed := NKeyUser(t)
	consSeedFile, consPub, consSeed := NKeyUser(t)
	wrongSeedFile, _, wrongSeed := NKeyUser(t)
	adminNKey, err := nats.NkeyOptionFromSeed(adminSeedFile)
	if err != nil {
		t.Fatalf("testenv: admin nkey: %v", err)
	}
	cases = append(cases, NATSAuthCase{
		Kind: "nkey",
		Security: NATSSecurity{PKI: pki, Auth: natsembed.Auth{NKeys: []natsembed.NKeyUser{
			{PublicKey: adminPub}, {PublicKey: prodPub}, {PublicKey: consPub, Permissions: consumerPerms},
		}}, Admin: []nats.Option{adminNKey}},
		Producer: Credentials{NKeySeedFile: prodSeedFile},
		Consumer: Credentials{NKeySeedFile: consSeedFile},
		Wrong:    Credentials{NKeySeedFile: wrongSeedFile},
		Secrets:  []string{adminSeed, prodSeed, consSeed, wrongSeed},
	})

	op, other := NewOperator(t), NewOperator(t)
	adminCreds, adminContent := op.UserCreds(t, "admin", nil)
	prodCreds, prodContent := op.UserCreds(t, "producer", nil)
	consCreds, consContent := op.UserCreds(t, "consumer", consumerPerms)
	wrongCreds, wrongContent := other.UserCreds(t, "producer", nil)
	cases = append(cases, NATSAuthCase{
		Kind:     "creds",
		Security: NATSSecurity{PKI: pki, Operator: op, Admin: []nats.Option{nats.UserCredentials(adminCreds)}},
		Producer: Credentials{CredsFile: prodCreds},
		Consumer: Credentials{CredsFile: consCreds},
		Wrong:    Credentials{CredsFile: wrongCreds},
		Secrets:  append(append(append(credsSecrets(adminContent), credsSecrets(prodContent)...), credsSecrets(consContent)...), credsSecrets(wrongContent)...),
	})
	return cases
}

// credsSecrets returns the nkey seed of a creds file's content (the JWT is
// signed, not secret, but the seed is).
func credsSecrets(content string) []string {
	var out []string
	for _, line := range strings.Split(content, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "SU") {
			out = append(out, line)
		}
	}
	return out
}
