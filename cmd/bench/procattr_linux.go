package main

import "syscall"

// childProcAttr makes the kernel SIGKILL a producer child when this command
// dies, so that no producer outlives the benchmark.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
