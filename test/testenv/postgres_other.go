//go:build !unix

package testenv

import (
	"syscall"
	"testing"
	"time"
)

// pgCredential is unused outside unix: the tests cannot run as root there.
type pgCredential struct{}

func postgresCredential(t testing.TB, dir string) *pgCredential {
	t.Helper()
	t.Fatalf("testenv: running postgres for a privileged test user is supported on unix only")
	return nil
}

func pgProcAttr(*pgCredential) *syscall.SysProcAttr { return childProcAttr() }

// killGroup does nothing outside unix: the postmaster alone is killed.
func killGroup(int, time.Duration) {}
