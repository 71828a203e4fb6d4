// Package keycloak is the saga adapter for Keycloak: workspace clients,
// their roles and members' role mappings, through gocloak's Admin REST
// calls made with the worker's own confidential client.
package keycloak
