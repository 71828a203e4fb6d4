package keycloak

import "time"

// SetNow replaces the clock the token cache judges expiry by.
func (a *Adapter) SetNow(now func() time.Time) {
	a.tokens.lock <- struct{}{}
	defer func() { <-a.tokens.lock }()
	a.tokens.now = now
}
