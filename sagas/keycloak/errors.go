package keycloak

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/sagas"
)

// status is the HTTP status in a gocloak error; 0 when no answer came
// (refused connection, reset, timeout).
func status(err error) int {
	var api *gocloak.APIError
	if errors.As(err, &api) {
		return api.Code
	}
	return 0
}

// classify wraps err with what was being done and marks it as Keycloak's
// (for the retry metrics) and permanent when it is a 4xx that a retry
// cannot fix (400, 401 after a fresh token, 403, a 404 the caller did not
// expect); no answer, 408, 429 and 5xx stay transient, and 409 becomes
// sagas.ErrConflict.
func classify(err error, format string, args ...any) error {
	return sagas.FromProvider(sagas.ProviderKeycloak, kind(err, format, args...))
}

// kind is classify without the provider mark.
func kind(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	already := sagas.IsPermanent(err)
	err = fmt.Errorf(format+": %w", append(args, err)...)
	if already {
		return err
	}
	switch code := status(err); {
	case code == http.StatusConflict:
		return fmt.Errorf("%w: %w", sagas.ErrConflict, err)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return err
	case code >= 400 && code < 500:
		return sagas.Permanent(err)
	}
	return err
}
