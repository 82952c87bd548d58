//go:build unix

package testenv

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// pgCredential is who initdb and postgres run as.
type pgCredential = syscall.Credential

// postgresCredential returns the credential of the system user postgres
// and gives it dir. It fails the test when the user does not exist (the
// postgresql package creates it) or cannot reach dir.
func postgresCredential(t testing.TB, dir string) *pgCredential {
	t.Helper()
	u, err := user.Lookup(postgresRootUser)
	if err != nil {
		t.Fatalf("testenv: the tests run as root, which postgres refuses, and the system user %q to run it as is missing (%v): install the postgresql package (scripts/test.sh does this)",
			postgresRootUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("testenv: user %s has uid %q, gid %q: not numbers", postgresRootUser, u.Uid, u.Gid)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatalf("testenv: give %s to user %s: %v", dir, postgresRootUser, err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatalf("testenv: stat %s: %v", d, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			t.Fatalf("testenv: postgres runs as user %s (it refuses root) and cannot reach %s: %s is not searchable by others; set TMPDIR to a directory it can reach, such as /tmp",
				postgresRootUser, dir, d)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return &pgCredential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

// pgProcAttr is childProcAttr with a process group of the server's own (so
// killGroup reaches the backends too) and cred (nil: the current user).
func pgProcAttr(cred *pgCredential) *syscall.SysProcAttr {
	a := childProcAttr()
	a.Setpgid = true
	a.Credential = cred
	return a
}

// killGroup SIGKILLs process group pgid and waits up to timeout until none
// of its processes is left.
func killGroup(pgid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
