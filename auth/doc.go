// Package auth tells the HTTP API who is calling: a Principal taken from a
// verified Keycloak bearer token, or a fixed one for tests and dev mode.
package auth
