package keycloak

import (
	"errors"
	"net/url"
	"time"
)

// DefaultTimeout bounds each adapter call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config says which Keycloak realm to manage and as whom.
type Config struct {
	// BaseURL is Keycloak's root URL, without /auth (Keycloak 17+).
	BaseURL string
	// Realm holds the workspace clients, the members and the worker client.
	Realm string
	// ClientID and ClientSecret are the worker's confidential client; its
	// service account needs realm-management's manage-clients,
	// view-clients, query-clients, query-users, view-users and
	// manage-users (to map client roles to users); view-realm too for
	// ApplyTokenShape, which reads the realm roles it puts in scope.
	ClientID, ClientSecret string
	// Timeout bounds each adapter call, token refresh included (default 30s).
	Timeout time.Duration
	// WorkspaceScopeClients, when not empty, gives each workspace a client
	// scope "workspace:<clientId>" holding its roles, optional on these
	// clients (the ones users sign in with), so that a token may be asked
	// for with one workspace in it on demand (see WorkspaceScopePrefix).
	WorkspaceScopeClients []string
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate reports the first field that cannot work, by name.
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "":
		return errors.New("keycloak: BaseURL is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("keycloak: BaseURL must be an http or https URL")
	case c.Realm == "":
		return errors.New("keycloak: Realm is required")
	case c.ClientID == "":
		return errors.New("keycloak: ClientID is required")
	case c.ClientSecret == "":
		return errors.New("keycloak: ClientSecret is required")
	case c.Timeout < 0:
		return errors.New("keycloak: Timeout must not be negative")
	}
	return nil
}
