package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/test/testenv"
)

// TestAuthAndTLS: the consumer reads over TLS (the server's certificate
// checked against -tls-ca) as a NATS user whose password comes from the
// environment or a file; a wrong password fails with exit 1 and is not
// printed, and no flag takes a password itself.
func TestAuthAndTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	tc := testenv.NATSAuthCases(t, pki, "_STAN.pub.>")[0] // user/password
	if tc.Kind != "user/password" {
		t.Fatalf("testenv's first case is %q, want user/password", tc.Kind)
	}
	srv := testenv.StartStanWith(t, tc.Security)
	sc := srv.Conn(t, "")
	msg := `{"v":1,"id":"f.000001:100:0","source":{"name":"x","server_id":1,"file":"f.000001","pos":100,"row":0,"ts":"2026-11-21T19:00:00Z"},"db":"shop","table":"orders","type":"insert","pk":["id"],"after":{"id":1}}`
	if err := sc.Publish("shop.orders", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	base := []string{"-url", srv.URL(), "-cluster", srv.ClusterID, "-tls-ca", pki.CA, "-user", tc.Consumer.User}

	// The password from the environment.
	env := func(k string) (string, bool) {
		if k == "DBSYNC_NATS_PASSWORD" {
			return tc.Consumer.Password, true
		}
		return "", false
	}
	var stdout, stderr testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- runEnv(ctx, append(base, "shop.orders"), env, &stdout, &stderr) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 || strings.TrimSpace(stdout.String()) != msg {
		t.Fatalf("exit %d, printed %q; stderr: %s", code, stdout.String(), stderr.String())
	}

	// A wrong password from a file.
	noEnv := func(string) (string, bool) { return "", false }
	stderr = testenv.Buffer{}
	wrong := testenv.SecretFile(t, "pw", tc.Wrong.Password)
	if code := runEnv(context.Background(), append(base, "-password-file", wrong, "shop.orders"), noEnv, &stdout, &stderr); code != 1 {
		t.Fatalf("wrong password: exit %d, want 1; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Authorization") {
		t.Errorf("wrong password: stderr does not say the server refused it: %s", stderr.String())
	}
	for _, s := range tc.Secrets {
		if strings.Contains(stderr.String()+stdout.String(), s) {
			t.Errorf("a secret is printed: %s", stderr.String())
		}
	}
	// No flag takes a secret.
	for _, f := range []string{"-password", "-token"} {
		stderr = testenv.Buffer{}
		if code := runEnv(context.Background(), append(base, f, "x", "shop.orders"), noEnv, &stdout, &stderr); code != 2 {
			t.Errorf("%s accepted (exit %d)", f, code)
		}
	}
}
