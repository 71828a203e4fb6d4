package kcemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// realmExport is the part of Keycloak's RealmRepresentation the emulator
// models. Everything else in an export is ignored.
type realmExport struct {
	ID                    string  `json:"id"`
	Realm                 *string `json:"realm"`
	DisplayName           string  `json:"displayName"`
	Enabled               *bool   `json:"enabled"`
	AccessTokenLifespan   *int    `json:"accessTokenLifespan"`
	SSOSessionIdleTimeout *int    `json:"ssoSessionIdleTimeout"`
	SSOSessionMaxLifespan *int    `json:"ssoSessionMaxLifespan"`
	Roles                 *struct {
		Realm  []roleRep            `json:"realm"`
		Client map[string][]roleRep `json:"client"`
	} `json:"roles"`
	DefaultRole  *roleRep    `json:"defaultRole"`
	DefaultRoles []string    `json:"defaultRoles"` // before Keycloak 13
	Clients      []clientRep `json:"clients"`
	Users        []userRep   `json:"users"`
	// ScopeMappings are realm roles in a client's scope, ClientScopeMappings
	// a client's roles (by its clientId) in another's. Entries naming a
	// clientScope instead of a client are ignored: client scopes are not
	// modelled.
	ScopeMappings       []scopeMappingRep            `json:"scopeMappings"`
	ClientScopeMappings map[string][]scopeMappingRep `json:"clientScopeMappings"`
}

type scopeMappingRep struct {
	Client string   `json:"client"`
	Roles  []string `json:"roles"`
}

type credentialRep struct {
	Type           string `json:"type"`
	Value          string `json:"value,omitempty"`
	Temporary      *bool  `json:"temporary,omitempty"`
	SecretData     string `json:"secretData,omitempty"`
	CredentialData string `json:"credentialData,omitempty"`
}

// parseRealmExport decodes an export, failing clearly on anything that is
// not one. source names the file (or request) in errors.
func parseRealmExport(data []byte, source string) (*realmExport, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("%s is not a Keycloak realm export: expected a JSON object", source)
	}
	var ex realmExport
	if err := json.Unmarshal(data, &ex); err != nil {
		return nil, fmt.Errorf("%s is not a Keycloak realm export: %w", source, err)
	}
	if ex.Realm == nil || strings.TrimSpace(*ex.Realm) == "" {
		return nil, fmt.Errorf("%s is not a Keycloak realm export: it has no \"realm\" name", source)
	}
	return &ex, nil
}

// buildRealm turns an export into a realm, as Keycloak's importer does:
// ids from the export are kept, missing roles named by mappings are created,
// and the built-in clients and roles are added when the export lacks them.
func buildRealm(ex *realmExport) (*realm, error) {
	r, err := newRealm(*ex.Realm)
	if err != nil {
		return nil, err
	}
	if ex.ID != "" {
		r.ID = ex.ID
	}
	r.DisplayName = ex.DisplayName
	r.Enabled = ex.Enabled == nil || *ex.Enabled
	setInt(&r.AccessTokenLifespan, ex.AccessTokenLifespan)
	setInt(&r.SSOSessionIdleTimeout, ex.SSOSessionIdleTimeout)
	setInt(&r.SSOSessionMaxLifespan, ex.SSOSessionMaxLifespan)

	for i := range ex.Clients {
		if err := r.importClient(&ex.Clients[i]); err != nil {
			return nil, err
		}
	}
	if err := r.importRoles(ex); err != nil {
		return nil, err
	}
	r.importDefaultRole(ex)
	r.ensureDefaults()
	if err := r.importScopeMappings(ex); err != nil {
		return nil, err
	}
	for i := range ex.Users {
		if err := r.importUser(&ex.Users[i]); err != nil {
			return nil, err
		}
	}
	for _, c := range r.Clients {
		if c.ServiceAccountsEnabled {
			r.ensureServiceAccount(c)
		}
	}
	return r, nil
}

func setInt(dst *int, v *int) {
	if v != nil && *v > 0 {
		*dst = *v
	}
}

func (r *realm) importClient(rep *clientRep) error {
	if rep.ClientID == nil || *rep.ClientID == "" {
		return fmt.Errorf("realm %q: a client has no clientId", r.Name)
	}
	if r.clientByClientID(*rep.ClientID) != nil {
		return fmt.Errorf("realm %q: client %q appears twice", r.Name, *rep.ClientID)
	}
	c := newClient(str(rep.ID), *rep.ClientID)
	rep.applyTo(c)
	if !c.PublicClient && !c.BearerOnly && c.Secret == "" {
		c.Secret = newSecret()
	}
	r.putClient(c)
	return nil
}

func (r *realm) importRoles(ex *realmExport) error {
	type pending struct {
		ro  *role
		rep roleRep
	}
	var all []pending
	if ex.Roles != nil {
		for _, rep := range ex.Roles.Realm {
			all = append(all, pending{r.addImportedRole("", rep), rep})
		}
		for clientID, reps := range ex.Roles.Client {
			c := r.clientByClientID(clientID)
			if c == nil {
				return fmt.Errorf("realm %q: roles given for unknown client %q", r.Name, clientID)
			}
			for _, rep := range reps {
				all = append(all, pending{r.addImportedRole(c.ID, rep), rep})
			}
		}
	}
	// Composites can name roles defined later in the file, so they are
	// resolved once every role exists.
	for _, p := range all {
		if err := r.setComposites(p.ro, p.rep.Composites); err != nil {
			return err
		}
	}
	return nil
}

func (r *realm) importScopeMappings(ex *realmExport) error {
	add := func(containerID string, m scopeMappingRep) error {
		if m.Client == "" {
			return nil
		}
		c := r.clientByClientID(m.Client)
		if c == nil {
			return fmt.Errorf("realm %q: scope mapping for unknown client %q", r.Name, m.Client)
		}
		for _, name := range m.Roles {
			c.ScopeRoleIDs = appendUnique(c.ScopeRoleIDs, r.ensureRole(containerID, name).ID)
		}
		return nil
	}
	for _, m := range ex.ScopeMappings {
		if err := add("", m); err != nil {
			return err
		}
	}
	for container, ms := range ex.ClientScopeMappings {
		owner := r.clientByClientID(container)
		if owner == nil {
			return fmt.Errorf("realm %q: scope mapping of roles of unknown client %q", r.Name, container)
		}
		for _, m := range ms {
			if err := add(owner.ID, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *realm) addImportedRole(clientInternalID string, rep roleRep) *role {
	ro := r.ensureRole(clientInternalID, rep.Name)
	if rep.ID != "" && r.Roles[rep.ID] == nil {
		r.dropRole(ro)
		ro.ID = rep.ID
		r.putRole(ro)
	}
	ro.Description = rep.Description
	ro.Attributes = rep.Attributes
	return ro
}

func (r *realm) setComposites(ro *role, comps *roleComposites) error {
	if comps == nil {
		return nil
	}
	for _, name := range comps.Realm {
		r.addComposite(ro, r.ensureRole("", name).ID)
	}
	for clientID, names := range comps.Client {
		c := r.clientByClientID(clientID)
		if c == nil {
			return fmt.Errorf("realm %q: role %q is composed of roles of unknown client %q", r.Name, ro.Name, clientID)
		}
		for _, name := range names {
			r.addComposite(ro, r.ensureRole(c.ID, name).ID)
		}
	}
	return nil
}

// importDefaultRole understands both the Keycloak 13+ defaultRole and the
// older defaultRoles list.
func (r *realm) importDefaultRole(ex *realmExport) {
	if ex.DefaultRole != nil && ex.DefaultRole.Name != "" {
		r.DefaultRoleID = r.ensureRole("", ex.DefaultRole.Name).ID
		return
	}
	if len(ex.DefaultRoles) == 0 {
		return
	}
	def := r.ensureRole("", "default-roles-"+strings.ToLower(r.Name))
	for _, name := range ex.DefaultRoles {
		r.addComposite(def, r.ensureRole("", name).ID)
	}
	for _, rep := range ex.Clients {
		c := r.clientByClientID(str(rep.ClientID))
		for _, name := range rep.DefaultRoles {
			r.addComposite(def, r.ensureRole(c.ID, name).ID)
		}
	}
	r.DefaultRoleID = def.ID
}

func (r *realm) importUser(rep *userRep) error {
	if rep.Username == nil || *rep.Username == "" {
		return fmt.Errorf("realm %q: a user has no username", r.Name)
	}
	if r.userByUsername(*rep.Username) != nil {
		return fmt.Errorf("realm %q: user %q appears twice", r.Name, *rep.Username)
	}
	u := &user{ID: str(rep.ID), Username: strings.ToLower(*rep.Username), RoleIDs: map[string]bool{},
		CreatedTimestamp: rep.CreatedTimestamp}
	if u.ID == "" {
		u.ID = newID()
	}
	if u.CreatedTimestamp == 0 {
		u.CreatedTimestamp = nowMillis()
	}
	rep.applyTo(u)
	if rep.ServiceAccountClientID != "" {
		c := r.clientByClientID(rep.ServiceAccountClientID)
		if c == nil {
			return fmt.Errorf("realm %q: user %q is the service account of unknown client %q", r.Name, u.Username, rep.ServiceAccountClientID)
		}
		u.ServiceAccountOf = c.ID
	}
	if err := setCredentials(u, rep.Credentials); err != nil {
		return fmt.Errorf("realm %q: user %q: %w", r.Name, u.Username, err)
	}
	for _, name := range rep.RealmRoles {
		u.RoleIDs[r.ensureRole("", name).ID] = true
	}
	for clientID, names := range rep.ClientRoles {
		c := r.clientByClientID(clientID)
		if c == nil {
			return fmt.Errorf("realm %q: user %q holds roles of unknown client %q", r.Name, u.Username, clientID)
		}
		for _, name := range names {
			u.RoleIDs[r.ensureRole(c.ID, name).ID] = true
		}
	}
	r.putUser(u)
	return nil
}

// setCredentials takes the password among creds: a plain value is hashed, a
// hashed one is kept as exported. Hashes in an algorithm the emulator does
// not implement are kept but can never verify.
func setCredentials(u *user, creds []credentialRep) error {
	for _, c := range creds {
		if c.Type != "" && c.Type != "password" {
			continue
		}
		switch {
		case c.Value != "":
			h, err := hashPassword(c.Value)
			if err != nil {
				return err
			}
			u.Password = h
		case c.SecretData != "":
			h, err := parseExportedHash(c.SecretData, c.CredentialData)
			if err != nil {
				return fmt.Errorf("hashed password: %w", err)
			}
			u.Password = h
		}
	}
	return nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
