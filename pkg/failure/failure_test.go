package failure_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/dbsync/dbsync/pkg/failure"
)

func TestPermanent(t *testing.T) {
	if failure.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
	err := fmt.Errorf("read checkpoint: %w", failure.Permanent(fmt.Errorf("file damaged: %w", io.ErrUnexpectedEOF)))
	if !failure.IsPermanent(err) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%v: permanent %v, wraps the cause %v", err, failure.IsPermanent(err), errors.Is(err, io.ErrUnexpectedEOF))
	}
	if err.Error() != "read checkpoint: file damaged: unexpected EOF" {
		t.Fatalf("message %q", err)
	}
	if failure.IsPermanent(fmt.Errorf("timeout: %w", io.EOF)) {
		t.Fatal("an unmarked error counts as permanent")
	}
	// A sentinel can be permanent itself.
	errCorrupt := failure.Permanent(errors.New("corrupt"))
	if !failure.IsPermanent(fmt.Errorf("x: %w", errCorrupt)) || !errors.Is(fmt.Errorf("x: %w", errCorrupt), errCorrupt) {
		t.Fatal("a permanent sentinel does not propagate")
	}
}

func TestWithFix(t *testing.T) {
	if failure.WithFix(nil, "x") != nil {
		t.Fatal("WithFix(nil) is not nil")
	}
	inner := failure.WithFix(failure.Permanent(io.ErrUnexpectedEOF), "restore the file")
	err := fmt.Errorf("open store: %w", inner)
	if got := failure.Fix(err); got != "restore the file" {
		t.Fatalf("Fix = %q", got)
	}
	if err.Error() != "open store: unexpected EOF" {
		t.Fatalf("the fix leaked into the message: %q", err)
	}
	if !failure.IsPermanent(err) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal("WithFix hides the wrapped error")
	}
	if got := failure.Fix(failure.WithFix(err, "outer")); got != "outer" {
		t.Fatalf("Fix of nested fixes = %q, want the outermost", got)
	}
	if failure.Fix(io.EOF) != "" {
		t.Fatal("an error without a fix has one")
	}
}
