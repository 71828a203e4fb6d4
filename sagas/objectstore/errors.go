package objectstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/sagas"
)

// Error codes MinIO answers that the adapter branches on. The admin ones
// come from minio's cmd/api-errors.go and cmd/admin-handler-utils.go.
const (
	codeNoSuchBucket        = "NoSuchBucket"
	codeNoSuchTagSet        = "NoSuchTagSet"
	codeBucketNotEmpty      = "BucketNotEmpty"
	codeBucketExists        = "BucketAlreadyExists"
	codeBucketOwnedByYou    = "BucketAlreadyOwnedByYou"
	codeNoSuchUser          = "XMinioAdminNoSuchUser"
	codeNoSuchPolicy        = "XMinioAdminNoSuchPolicy"
	codePolicyInUse         = "XMinioIAMPolicyInUse"
	codePolicyAlreadyOnUser = "XMinioAdminPolicyChangeAlreadyApplied"
	codeVersionMismatch     = "XMinioAdminVersionMismatch" // an admin API this server lacks
)

// errCode is the S3 or admin error code in err, "" if it carries none.
func errCode(err error) string {
	var s3 minio.ErrorResponse
	if errors.As(err, &s3) {
		return s3.Code
	}
	var adm madmin.ErrorResponse
	if errors.As(err, &adm) {
		return adm.Code
	}
	return ""
}

// statusKey carries, per adapter call, the HTTP status of the last
// response: madmin's errors do not say it, and transient versus
// permanent turns on it.
type statusKey struct{}

func withStatus(ctx context.Context) (context.Context, *atomic.Int32) {
	s := new(atomic.Int32)
	return context.WithValue(ctx, statusKey{}, s), s
}

// statusTransport records each response's status in the request's context.
type statusTransport struct{ next http.RoundTripper }

func (t statusTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if s, ok := r.Context().Value(statusKey{}).(*atomic.Int32); ok {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		s.Store(int32(code))
	}
	return resp, err
}

// classify wraps a provider error with what was being done and marks it
// as MinIO's (for the retry metrics) and permanent when it is a 4xx a
// retry cannot fix; network errors, timeouts, 408, 429 and 5xx stay
// transient.
func classify(status *atomic.Int32, err error, format string, args ...any) error {
	return sagas.FromProvider(sagas.ProviderMinIO, kind(status, err, format, args...))
}

// kind is classify without the provider mark.
func kind(status *atomic.Int32, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf(format+": %w", append(args, err)...)
	code := int(status.Load())
	var s3 minio.ErrorResponse
	if errors.As(err, &s3) && s3.StatusCode != 0 {
		code = s3.StatusCode
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return err
	case code >= 400 && code < 500:
		return sagas.Permanent(err)
	}
	return err
}
