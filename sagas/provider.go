package sagas

import "errors"

// The providers a failure is told by, for the retry metrics: the adapters
// mark their errors at the boundary, so the engine can count retries per
// provider without knowing any provider's error types.
const (
	ProviderKeycloak = "keycloak"
	ProviderMinIO    = "minio"
	ProviderNATS     = "nats"
	ProviderOther    = "other"
)

// ProviderError marks err as coming from one provider. Its text is err's:
// the mark is for counting, never for the logs.
type ProviderError struct {
	Provider string
	Err      error
}

func (e *ProviderError) Error() string { return e.Err.Error() }
func (e *ProviderError) Unwrap() error { return e.Err }

// FromProvider marks err as provider's; nil stays nil.
func FromProvider(provider string, err error) error {
	if err == nil {
		return nil
	}
	return &ProviderError{Provider: provider, Err: err}
}

// ProviderOf names the provider err came from, ProviderOther when no
// adapter marked it.
func ProviderOf(err error) string {
	var p *ProviderError
	if errors.As(err, &p) {
		return p.Provider
	}
	return ProviderOther
}
