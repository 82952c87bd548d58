// Package failpoint lets the fault-injection suite kill the producer at
// precise moments. Hit is a no-op unless the binary is built with the
// "failpoints" build tag; then DBSYNC_FAILPOINT="name" (or "name:N", the
// N-th hit) makes the named Hit SIGKILL the process, as a crash there would.
//
// Names used: after-decode, in-transaction, after-publish-before-ack,
// after-ack-before-checkpoint, in-checkpoint-write.
package failpoint
