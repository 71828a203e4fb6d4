// Package kccontract holds the Keycloak contract tests: one suite, driven
// through gocloak, that passes against both the emulator (the default) and a
// real Keycloak 26 (set KEYCLOAK_URL, KEYCLOAK_ADMIN_USER and
// KEYCLOAK_ADMIN_PASSWORD; see deploy/keycloak/README.md).
package kccontract
