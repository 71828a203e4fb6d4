package keycloakserver

import (
	"context"
	"fmt"
	"os"
)

// The environment through which one running Keycloak serves every test
// package of a run: `keycloak-real -- go test ./...` (the test task) sets
// them, FromEnv reads them.
const (
	EnvURL           = "KEYCLOAK_REAL_URL"
	EnvAdminUser     = "KEYCLOAK_REAL_ADMIN_USER"
	EnvAdminPassword = "KEYCLOAK_REAL_ADMIN_PASSWORD"
)

// Instance is a real Keycloak a caller may use: the run's shared one, or
// one of its own that Close stops.
type Instance struct {
	URL, AdminUser, AdminPassword string
	own                           *Server
}

// Env is the environment that points FromEnv at s.
func (s *Server) Env() []string {
	return []string{EnvURL + "=" + s.URL(), EnvAdminUser + "=" + s.AdminUser(), EnvAdminPassword + "=" + s.AdminPassword()}
}

// FromEnv returns the Keycloak that EnvURL names, or, when it is unset,
// starts one of the caller's own with a temporary home (tens of seconds;
// do it once, in TestMain). Tests on a shared server isolate themselves by
// realm: CreateRealm a copy of what they need under a name of their own.
func FromEnv(ctx context.Context) (*Instance, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return &Instance{URL: u, AdminUser: os.Getenv(EnvAdminUser), AdminPassword: os.Getenv(EnvAdminPassword)}, nil
	}
	s, err := Start(ctx, Options{})
	if err != nil {
		return nil, fmt.Errorf("no %s set, and starting a Keycloak of our own failed: %w", EnvURL, err)
	}
	return &Instance{URL: s.URL(), AdminUser: s.AdminUser(), AdminPassword: s.AdminPassword(), own: s}, nil
}

// Close stops the server if the Instance started it; a shared one runs on.
func (i *Instance) Close() error {
	if i.own == nil {
		return nil
	}
	return i.own.Stop()
}
