//go:build !linux

package main

import "syscall"

// childProcAttr returns nil: outside Linux a producer child is only stopped
// by the scope's cleanup.
func childProcAttr() *syscall.SysProcAttr { return nil }
