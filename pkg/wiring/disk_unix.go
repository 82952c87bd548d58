//go:build linux || darwin || freebsd

package wiring

import "syscall"

// freeBytes returns the bytes free to unprivileged users on the filesystem
// holding dir, or 0 when it cannot be read.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
