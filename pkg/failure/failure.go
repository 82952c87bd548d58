// Package failure marks the errors that retrying cannot fix, so that every
// component can say so and the producer can tell with one errors.Is check:
// a purged binlog, refused credentials, a corrupt checkpoint, a message the
// broker can never accept.
package failure

import "errors"

// ErrPermanent is matched (errors.Is) by every error Permanent returns and
// every error that wraps one.
var ErrPermanent = errors.New("permanent failure")

// Permanent marks err as one retrying cannot fix: errors.Is(result,
// ErrPermanent) holds, errors.Is and errors.As still see err, and the
// message is err's. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err: err}
}

// IsPermanent reports whether err (or an error it wraps) is permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

type permanent struct{ err error }

func (p *permanent) Error() string        { return p.err.Error() }
func (p *permanent) Unwrap() error        { return p.err }
func (p *permanent) Is(target error) bool { return target == ErrPermanent }

// WithFix attaches fix, the action that resolves err (a statement to run, a
// setting to change), without adding it to the message: the doctor shows it
// as the finding's fix and the producer logs it next to the error.
// errors.Is and errors.As still see err. WithFix(nil, fix) is nil.
func WithFix(err error, fix string) error {
	if err == nil {
		return nil
	}
	return &withFix{err: err, fix: fix}
}

// Fixer is implemented by errors that know what resolves them.
type Fixer interface {
	// Fix says what resolves the error: a statement to run, a setting to
	// change.
	Fix() string
}

// Fix returns the fix of err or of an error it wraps (WithFix, or an error
// type implementing Fixer), the outermost one when there are several; ""
// when there is none.
func Fix(err error) string {
	var f Fixer
	if errors.As(err, &f) {
		return f.Fix()
	}
	return ""
}

type withFix struct {
	err error
	fix string
}

func (f *withFix) Error() string { return f.err.Error() }
func (f *withFix) Unwrap() error { return f.err }
func (f *withFix) Fix() string   { return f.fix }
