//go:build !failpoints

package failpoint

// Hit does nothing in normal builds.
func Hit(string) {}

// Init does nothing in normal builds.
func Init() {}
