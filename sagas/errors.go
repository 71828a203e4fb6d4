// Package sagas runs workspace provisioning as sagas: ordered, idempotent
// steps against Keycloak and MinIO whose progress survives crashes.
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
