// Package testenv starts real servers for tests: MariaDB (mariadbd with binary
// logging), Redis (redis-server), PostgreSQL (initdb and postgres), NATS
// Streaming and NATS with JetStream (embedded in-process) and Kafka
// (franz-go's in-process cluster).
//
// Every server listens on a free loopback port (127.0.0.1), keeps its files in
// a t.TempDir(), and is stopped by t.Cleanup even when the test fails. A missing
// server binary is a test failure (t.Fatalf) naming the package to install,
// never a skip: scripts/test.sh installs them on a fresh Debian machine.
//
// The package is for tests only; every function takes a testing.TB and reports
// failures through it.
package testenv
