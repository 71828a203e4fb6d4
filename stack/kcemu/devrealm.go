package kcemu

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
)

// Names in the built-in dev realm (devrealm.json), for tests and the dev stack.
const (
	DevRealmName          = "eoepca"
	DevPassword           = "changeme" // every dev user's password
	DevAdminUser          = "example-admin"
	DevUser1              = "example-user-1"
	DevUser2              = "example-user-2"
	DevAdminRole          = "workspace-api:admin" // realm role held by DevAdminUser
	DevPublicClientID     = "demo"                // public, password grant, audience workspace-api
	DevUIClientID         = "workspace-ui"        // public, authorization code with PKCE (S256), audience workspace-api
	DevAPIClientID        = "workspace-api"       // bearer-only audience of the API
	DevWorkerClientID     = "workspace-worker"    // confidential, service account
	DevWorkerClientSecret = "workspace-worker-secret"
)

//go:embed devrealm.json
var devRealmJSON []byte

// DevRealmJSON is the dev realm in Keycloak's realm-export format; a real
// Keycloak imports it unchanged (POST /admin/realms or --import-realm).
func DevRealmJSON() []byte { return append([]byte(nil), devRealmJSON...) }

// DevRealmAs is the dev realm export renamed to name, with its users'
// default roles renamed to match, so that tests sharing one Keycloak can
// each import a copy of their own.
func DevRealmAs(name string) ([]byte, error) {
	var rep map[string]any
	if err := json.Unmarshal(devRealmJSON, &rep); err != nil {
		return nil, fmt.Errorf("dev realm: %w", err)
	}
	rep["realm"] = name
	users, _ := rep["users"].([]any)
	for _, u := range users {
		um, _ := u.(map[string]any)
		roles, _ := um["realmRoles"].([]any)
		for i, r := range roles {
			if r == "default-roles-"+DevRealmName {
				roles[i] = "default-roles-" + name
			}
		}
	}
	return json.Marshal(rep)
}

// TokenShape is what a member's token carries of their workspaces. The
// realm decides it, through the clients users sign in with: a workspace
// client's roles reach a token only if the requesting client's scope lets
// them through.
type TokenShape string

const (
	// TokenShapeEOEPCA puts every workspace the user belongs to in aud and
	// resource_access, as EOEPCA's model and the contract have it: the
	// sign-in clients have fullScopeAllowed on (Keycloak's default), so the
	// token grows with each membership.
	TokenShapeEOEPCA TokenShape = "eoepca"
	// TokenShapeCompact keeps workspaces out of the token: the sign-in
	// clients have fullScopeAllowed off and only the platform admin realm
	// role in scope, so the token's size does not depend on the number of
	// memberships. The API decides from its read model, not from the token.
	TokenShapeCompact TokenShape = "compact"
)

// DevSignInClients are the dev realm's clients users sign in with.
var DevSignInClients = []string{DevPublicClientID, DevUIClientID}

// ShapeTokens returns the realm export with its sign-in clients set for
// shape. For TokenShapeCompact, scopeRoles are the realm roles the API
// still needs in realm_access (the platform admin role); an unknown
// sign-in client is an error. TokenShapeEOEPCA returns the export as it is.
func ShapeTokens(export []byte, shape TokenShape, signIn, scopeRoles []string) ([]byte, error) {
	switch shape {
	case TokenShapeEOEPCA:
		return export, nil
	case TokenShapeCompact:
	default:
		return nil, fmt.Errorf("token shape %q: want %q or %q", shape, TokenShapeEOEPCA, TokenShapeCompact)
	}
	var rep map[string]any
	if err := json.Unmarshal(export, &rep); err != nil {
		return nil, fmt.Errorf("realm export: %w", err)
	}
	clients, _ := rep["clients"].([]any)
	mappings, _ := rep["scopeMappings"].([]any)
	for _, id := range signIn {
		i := slices.IndexFunc(clients, func(c any) bool { m, _ := c.(map[string]any); return m["clientId"] == id })
		if i < 0 {
			return nil, fmt.Errorf("realm export: no sign-in client %q", id)
		}
		clients[i].(map[string]any)["fullScopeAllowed"] = false
		if len(scopeRoles) > 0 {
			mappings = append(mappings, map[string]any{"client": id, "roles": scopeRoles})
		}
	}
	rep["scopeMappings"] = mappings
	return json.Marshal(rep)
}

// DevRealmShaped is DevRealmAs(name) with its sign-in clients set for shape.
func DevRealmShaped(name string, shape TokenShape) ([]byte, error) {
	export, err := DevRealmAs(name)
	if err != nil {
		return nil, err
	}
	return ShapeTokens(export, shape, DevSignInClients, []string{DevAdminRole})
}
