package testenv

import "syscall"

// childProcAttr makes the kernel SIGKILL a server child when the test binary
// dies (for example on a go test -timeout panic), so no server outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
