// Package kccontract holds the Keycloak contract tests: one suite, driven
// through gocloak, whose every test runs twice with the same assertions,
// against the emulator and against the real Keycloak (the test run's shared
// server, one of the package's own, or KEYCLOAK_URL's with
// KEYCLOAK_ADMIN_USER and KEYCLOAK_ADMIN_PASSWORD; see
// deploy/keycloak/README.md). -short runs the emulator's half only.
package kccontract
