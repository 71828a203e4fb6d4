package sagas

import (
	"errors"
	"fmt"
)

// The kinds of provider failure the saga logic branches on. Adapters
// translate gocloak, madmin and minio-go errors into these at the
// boundary, so no step ever inspects a provider's own error types.
var (
	// ErrNotFound: the resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the resource exists already (a create lost a race).
	ErrConflict = errors.New("conflict")
	// ErrNotOurs: a resource with that name exists but this system did
	// not create it, so it must never be adopted or removed.
	ErrNotOurs = errors.New("exists and was not created by this system")
	// ErrNotEmpty: a bucket still holds objects and the request did not
	// say purge.
	ErrNotEmpty = errors.New("bucket is not empty")
	// ErrUnknownUser: the user named in a request does not exist.
	ErrUnknownUser = errors.New("unknown user")
)

// PermanentError marks a failure that retrying cannot fix; everything
// else is treated as transient (outage, timeout, 5xx) and retried.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that IsPermanent reports true; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error { return Permanent(fmt.Errorf(format, args...)) }

// IsPermanent reports whether retrying err cannot help: it was marked
// permanent, or it is one of the kinds no retry changes.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p) || errors.Is(err, ErrNotOurs) || errors.Is(err, ErrNotEmpty) ||
		errors.Is(err, ErrUnknownUser)
}

// Outcomes of a run besides success. The worker maps them to a message's
// fate in one place.
var (
	// ErrBusy: another live worker holds the workspace's lease (or took
	// it from us); try the command again later.
	ErrBusy = errors.New("workspace is leased by another worker")
	// ErrStopped: the context ended, so the run stopped at a step boundary
	// and released its lease; the record resumes it later.
	ErrStopped = errors.New("stopped at a step boundary")
)

// FailedError is a run that ended in failure: the failure is recorded
// and published, nothing is left to do for the command.
type FailedError struct {
	Saga, Step string
	Retryable  bool // transient errors outlasted the retry budget
	Err        error
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("%s saga failed at step %s: %v", e.Saga, e.Step, e.Err)
}
func (e *FailedError) Unwrap() error { return e.Err }

// RejectedError is a command that is never acted on: it makes no sense
// for the workspace's state (or is malformed). Reason says why, for the
// operator who finds it among the dead letters.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string { return "command rejected: " + e.Reason }

// Rejectf returns a *RejectedError.
func Rejectf(format string, args ...any) error {
	return &RejectedError{Reason: fmt.Sprintf(format, args...)}
}
