//go:build !linux

package testenv

import "syscall"

// childProcAttr returns no special attributes outside Linux; children are
// still stopped by t.Cleanup.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
