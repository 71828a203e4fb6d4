package kcemu

import "strings"

// Keycloak's JSON representations, as the Admin REST API reads and writes
// them. Input fields are pointers so an update can tell "absent" from "zero".

type roleComposites struct {
	Realm  []string            `json:"realm,omitempty"`
	Client map[string][]string `json:"client,omitempty"`
}

type roleRep struct {
	ID          string              `json:"id,omitempty"`
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	Composite   bool                `json:"composite"`
	ClientRole  bool                `json:"clientRole"`
	ContainerID string              `json:"containerId,omitempty"`
	Composites  *roleComposites     `json:"composites,omitempty"`
	Attributes  map[string][]string `json:"attributes,omitempty"`
}

type clientRep struct {
	ID                        *string            `json:"id"`
	ClientID                  *string            `json:"clientId"`
	Name                      *string            `json:"name"`
	Description               *string            `json:"description"`
	RootURL                   *string            `json:"rootUrl"`
	BaseURL                   *string            `json:"baseUrl"`
	Enabled                   *bool              `json:"enabled"`
	Secret                    *string            `json:"secret"`
	PublicClient              *bool              `json:"publicClient"`
	BearerOnly                *bool              `json:"bearerOnly"`
	ServiceAccountsEnabled    *bool              `json:"serviceAccountsEnabled"`
	DirectAccessGrantsEnabled *bool              `json:"directAccessGrantsEnabled"`
	StandardFlowEnabled       *bool              `json:"standardFlowEnabled"`
	ImplicitFlowEnabled       *bool              `json:"implicitFlowEnabled"`
	ConsentRequired           *bool              `json:"consentRequired"`
	FullScopeAllowed          *bool              `json:"fullScopeAllowed"`
	Protocol                  *string            `json:"protocol"`
	RedirectURIs              *[]string          `json:"redirectUris"`
	WebOrigins                *[]string          `json:"webOrigins"`
	Attributes                map[string]*string `json:"attributes"`
	ProtocolMappers           *[]protocolMapper  `json:"protocolMappers"`
	DefaultRoles              []string           `json:"defaultRoles"` // pre-13 exports
}

// applyTo merges the fields present in rep into c, as Keycloak's update does.
func (rep *clientRep) applyTo(c *client) {
	setS := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setB := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	setS(&c.ClientID, rep.ClientID)
	setS(&c.Name, rep.Name)
	setS(&c.Description, rep.Description)
	setS(&c.RootURL, rep.RootURL)
	setS(&c.BaseURL, rep.BaseURL)
	setS(&c.Secret, rep.Secret)
	setS(&c.Protocol, rep.Protocol)
	setB(&c.Enabled, rep.Enabled)
	setB(&c.PublicClient, rep.PublicClient)
	setB(&c.BearerOnly, rep.BearerOnly)
	setB(&c.ServiceAccountsEnabled, rep.ServiceAccountsEnabled)
	setB(&c.DirectAccessGrantsEnabled, rep.DirectAccessGrantsEnabled)
	setB(&c.StandardFlowEnabled, rep.StandardFlowEnabled)
	setB(&c.ImplicitFlowEnabled, rep.ImplicitFlowEnabled)
	setB(&c.ConsentRequired, rep.ConsentRequired)
	setB(&c.FullScopeAllowed, rep.FullScopeAllowed)
	if rep.RedirectURIs != nil {
		c.RedirectURIs = append([]string{}, *rep.RedirectURIs...)
	}
	if rep.WebOrigins != nil {
		c.WebOrigins = append([]string{}, *rep.WebOrigins...)
	}
	for k, v := range rep.Attributes {
		// Keycloak merges attributes; a null or empty value removes one.
		if v == nil || *v == "" {
			delete(c.Attributes, k)
		} else {
			c.Attributes[k] = *v
		}
	}
	if rep.ProtocolMappers != nil {
		c.ProtocolMappers = nil
		for _, m := range *rep.ProtocolMappers {
			if m.ID == "" {
				m.ID = newID()
			}
			c.ProtocolMappers = append(c.ProtocolMappers, m)
		}
	}
}

type userRep struct {
	ID                     *string             `json:"id"`
	Username               *string             `json:"username"`
	Email                  *string             `json:"email"`
	FirstName              *string             `json:"firstName"`
	LastName               *string             `json:"lastName"`
	EmailVerified          *bool               `json:"emailVerified"`
	Enabled                *bool               `json:"enabled"`
	CreatedTimestamp       int64               `json:"createdTimestamp"`
	Credentials            []credentialRep     `json:"credentials"`
	RealmRoles             []string            `json:"realmRoles"`
	ClientRoles            map[string][]string `json:"clientRoles"`
	ServiceAccountClientID string              `json:"serviceAccountClientId"`
}

func (rep *userRep) applyTo(u *user) {
	if rep.Email != nil {
		u.Email = strings.ToLower(*rep.Email)
	}
	if rep.FirstName != nil {
		u.FirstName = *rep.FirstName
	}
	if rep.LastName != nil {
		u.LastName = *rep.LastName
	}
	if rep.EmailVerified != nil {
		u.EmailVerified = *rep.EmailVerified
	}
	if rep.Enabled != nil {
		u.Enabled = *rep.Enabled
	}
}

// Output representations, field order as Keycloak 26 writes them.

type clientOut struct {
	ID                                 string            `json:"id"`
	ClientID                           string            `json:"clientId"`
	Name                               string            `json:"name,omitempty"`
	Description                        string            `json:"description,omitempty"`
	RootURL                            string            `json:"rootUrl,omitempty"`
	BaseURL                            string            `json:"baseUrl,omitempty"`
	SurrogateAuthRequired              bool              `json:"surrogateAuthRequired"`
	Enabled                            bool              `json:"enabled"`
	AlwaysDisplayInConsole             bool              `json:"alwaysDisplayInConsole"`
	ClientAuthenticatorType            string            `json:"clientAuthenticatorType"`
	Secret                             string            `json:"secret,omitempty"`
	RedirectURIs                       []string          `json:"redirectUris"`
	WebOrigins                         []string          `json:"webOrigins"`
	NotBefore                          int               `json:"notBefore"`
	BearerOnly                         bool              `json:"bearerOnly"`
	ConsentRequired                    bool              `json:"consentRequired"`
	StandardFlowEnabled                bool              `json:"standardFlowEnabled"`
	ImplicitFlowEnabled                bool              `json:"implicitFlowEnabled"`
	DirectAccessGrantsEnabled          bool              `json:"directAccessGrantsEnabled"`
	ServiceAccountsEnabled             bool              `json:"serviceAccountsEnabled"`
	PublicClient                       bool              `json:"publicClient"`
	FrontchannelLogout                 bool              `json:"frontchannelLogout"`
	Protocol                           string            `json:"protocol,omitempty"`
	Attributes                         map[string]string `json:"attributes"`
	AuthenticationFlowBindingOverrides map[string]string `json:"authenticationFlowBindingOverrides"`
	FullScopeAllowed                   bool              `json:"fullScopeAllowed"`
	NodeReRegistrationTimeout          int               `json:"nodeReRegistrationTimeout"`
	ProtocolMappers                    []protocolMapper  `json:"protocolMappers,omitempty"`
	DefaultClientScopes                []string          `json:"defaultClientScopes"`
	OptionalClientScopes               []string          `json:"optionalClientScopes"`
	Access                             map[string]bool   `json:"access,omitempty"`
}

func (c *client) out(access map[string]bool) clientOut {
	o := clientOut{
		ID: c.ID, ClientID: c.ClientID, Name: c.Name, Description: c.Description,
		RootURL: c.RootURL, BaseURL: c.BaseURL, Enabled: c.Enabled,
		ClientAuthenticatorType: "client-secret", RedirectURIs: c.RedirectURIs, WebOrigins: c.WebOrigins,
		BearerOnly: c.BearerOnly, ConsentRequired: c.ConsentRequired,
		StandardFlowEnabled: c.StandardFlowEnabled, ImplicitFlowEnabled: c.ImplicitFlowEnabled,
		DirectAccessGrantsEnabled: c.DirectAccessGrantsEnabled, ServiceAccountsEnabled: c.ServiceAccountsEnabled,
		PublicClient: c.PublicClient, Protocol: c.Protocol, Attributes: map[string]string{},
		AuthenticationFlowBindingOverrides: map[string]string{}, FullScopeAllowed: c.FullScopeAllowed,
		NodeReRegistrationTimeout: -1, ProtocolMappers: c.ProtocolMappers,
		DefaultClientScopes:  []string{"acr", "basic", "email", "profile", "roles", "web-origins"},
		OptionalClientScopes: []string{"address", "microprofile-jwt", "offline_access", "organization", "phone"},
		Access:               access,
	}
	if !c.PublicClient {
		o.Secret = c.Secret
	}
	for k, v := range c.Attributes {
		o.Attributes[k] = v
	}
	if o.RedirectURIs == nil {
		o.RedirectURIs = []string{}
	}
	if o.WebOrigins == nil {
		o.WebOrigins = []string{}
	}
	return o
}

type userOut struct {
	ID                         string          `json:"id"`
	Username                   string          `json:"username"`
	FirstName                  string          `json:"firstName,omitempty"`
	LastName                   string          `json:"lastName,omitempty"`
	Email                      string          `json:"email,omitempty"`
	EmailVerified              bool            `json:"emailVerified"`
	Enabled                    bool            `json:"enabled"`
	CreatedTimestamp           int64           `json:"createdTimestamp"`
	TOTP                       bool            `json:"totp"`
	ServiceAccountClientID     string          `json:"serviceAccountClientId,omitempty"`
	DisableableCredentialTypes []string        `json:"disableableCredentialTypes"`
	RequiredActions            []string        `json:"requiredActions"`
	NotBefore                  int             `json:"notBefore"`
	Access                     map[string]bool `json:"access,omitempty"`
}

func (u *user) out(r *realm, access map[string]bool) userOut {
	o := userOut{
		ID: u.ID, Username: u.Username, FirstName: u.FirstName, LastName: u.LastName,
		Email: u.Email, EmailVerified: u.EmailVerified, Enabled: u.Enabled,
		CreatedTimestamp: u.CreatedTimestamp, DisableableCredentialTypes: []string{},
		RequiredActions: []string{}, Access: access,
	}
	if c := r.Clients[u.ServiceAccountOf]; c != nil {
		o.ServiceAccountClientID = c.ClientID
	}
	return o
}

func (ro *role) out(r *realm) roleRep {
	o := roleRep{
		ID: ro.ID, Name: ro.Name, Description: ro.Description, Composite: len(ro.Composites) > 0,
		ClientRole: ro.ClientID != "", ContainerID: r.ID, Attributes: ro.Attributes,
	}
	if ro.ClientID != "" {
		o.ContainerID = ro.ClientID
	}
	if o.Attributes == nil {
		o.Attributes = map[string][]string{}
	}
	return o
}
