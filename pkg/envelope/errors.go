package envelope

import "fmt"

// DecodeError reports a message that is not a valid envelope.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return "decode dbsync envelope: " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// VersionError reports an envelope version this code does not understand.
type VersionError struct{ Got int }

func (e *VersionError) Error() string {
	return fmt.Sprintf("envelope version %d is not supported (this SDK reads version %d): upgrade the SDK", e.Got, Version)
}
