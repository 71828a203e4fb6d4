package kcemu

import (
	_ "embed"
	"encoding/json"
	"fmt"
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
