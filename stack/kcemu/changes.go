package kcemu

import (
	"encoding/json"
	"fmt"
)

// What a change record names. A record carries the object's value when it
// was committed, or deleted when it was gone by then, so replaying records
// in order rebuilds the state whatever happened in between.
const (
	kindRealm    = "realm"    // a whole realm: created, imported or deleted
	kindSettings = "settings" // a realm's own fields and revoked sessions
	kindClient   = "client"
	kindUser     = "user"
	kindRole     = "role"
	// kindClientScope is a client scope of the realm's own.
	kindClientScope = "clientScope"
)

type dirtyKey struct{ kind, id string }

// change is one object as a commit left it.
type change struct {
	Realm   string          `json:"realm"`
	Kind    string          `json:"kind"`
	ID      string          `json:"id,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// touch notes that an object of the realm changed and must be logged.
func (r *realm) touch(kind, id string) {
	if r.dirty == nil {
		r.dirty = map[dirtyKey]struct{}{}
	}
	r.dirty[dirtyKey{kind, id}] = struct{}{}
}

// touchRealm notes that a realm was created, imported or deleted.
func (st *state) touchRealm(name string) {
	if st.dirty == nil {
		st.dirty = map[string]struct{}{}
	}
	st.dirty[name] = struct{}{}
}

// drain returns what changed since the last drain and forgets it. Its cost
// is that of the changes, plus one look per realm.
func (st *state) drain() ([]change, error) {
	var out []change
	for name := range st.dirty {
		c, err := realmChange(name, st.Realms[name])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	for name, rl := range st.Realms {
		if _, whole := st.dirty[name]; !whole {
			cs, err := rl.drain()
			if err != nil {
				return nil, err
			}
			out = append(out, cs...)
		}
		rl.dirty = nil
	}
	st.dirty = nil
	return out, nil
}

// retouch notes changes again after they failed to reach the log.
func (st *state) retouch(cs []change) {
	for _, c := range cs {
		if c.Kind == kindRealm {
			st.touchRealm(c.Realm)
		} else if rl := st.Realms[c.Realm]; rl != nil {
			rl.touch(c.Kind, c.ID)
		}
	}
}

func realmChange(name string, rl *realm) (change, error) {
	if rl == nil {
		return change{Realm: name, Kind: kindRealm, Deleted: true}, nil
	}
	v, err := json.Marshal(rl)
	if err != nil {
		return change{}, fmt.Errorf("marshal realm %q: %w", name, err)
	}
	return change{Realm: name, Kind: kindRealm, Value: v}, nil
}

func (r *realm) drain() ([]change, error) {
	var out []change
	for k := range r.dirty {
		v, err := r.valueOf(k)
		if err != nil {
			return nil, fmt.Errorf("marshal %s %q of realm %q: %w", k.kind, k.id, r.Name, err)
		}
		out = append(out, change{Realm: r.Name, Kind: k.kind, ID: k.id, Deleted: v == nil, Value: v})
	}
	return out, nil
}

// valueOf is the JSON of the object k names, nil if it is gone.
func (r *realm) valueOf(k dirtyKey) (json.RawMessage, error) {
	var v any
	switch k.kind {
	case kindSettings:
		v = r.settings()
	case kindClient:
		if c := r.Clients[k.id]; c != nil {
			v = c
		}
	case kindUser:
		if u := r.Users[k.id]; u != nil {
			v = u
		}
	case kindRole:
		if ro := r.Roles[k.id]; ro != nil {
			v = ro
		}
	case kindClientScope:
		if sc := r.ClientScopes[k.id]; sc != nil {
			v = sc
		}
	}
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// settings is the realm without its clients, users and roles.
func (r *realm) settings() *realm {
	h := *r
	h.Clients, h.Users, h.Roles, h.ClientScopes, h.dirty = nil, nil, nil, nil, nil
	return &h
}

// apply replays one change onto st.
func (st *state) apply(c change) error {
	if c.Kind == kindRealm {
		return st.applyRealm(c)
	}
	rl := st.Realms[c.Realm]
	if rl == nil {
		return fmt.Errorf("%s %q of unknown realm %q", c.Kind, c.ID, c.Realm)
	}
	if c.Kind == kindSettings {
		return rl.applySettings(c.Value)
	}
	if c.Deleted {
		rl.applyDelete(c.Kind, c.ID)
		return nil
	}
	return rl.applyPut(c.Kind, c.Value)
}

func (st *state) applyRealm(c change) error {
	if c.Deleted {
		delete(st.Realms, c.Realm)
		return nil
	}
	rl := &realm{}
	if err := json.Unmarshal(c.Value, rl); err != nil {
		return fmt.Errorf("realm %q: %w", c.Realm, err)
	}
	if err := rl.loaded(c.Realm); err != nil {
		return err
	}
	st.Realms[c.Realm] = rl
	return nil
}

func (r *realm) applySettings(v json.RawMessage) error {
	h := &realm{}
	if err := json.Unmarshal(v, h); err != nil {
		return fmt.Errorf("settings of realm %q: %w", r.Name, err)
	}
	if h.Name != r.Name {
		return fmt.Errorf("settings of realm %q name %q", r.Name, h.Name)
	}
	clients, users, roles, scopes, idx := r.Clients, r.Users, r.Roles, r.ClientScopes, r.idx
	*r = *h
	r.Clients, r.Users, r.Roles, r.ClientScopes, r.idx = clients, users, roles, scopes, idx
	if r.RevokedSessions == nil {
		r.RevokedSessions = map[string]int64{}
	}
	return r.loadKeys()
}

func (r *realm) applyDelete(kind, id string) {
	switch kind {
	case kindClient:
		if c := r.Clients[id]; c != nil {
			r.dropClient(c)
		}
	case kindUser:
		if u := r.Users[id]; u != nil {
			r.dropUser(u)
		}
	case kindRole:
		if ro := r.Roles[id]; ro != nil {
			r.dropRole(ro)
		}
	case kindClientScope:
		delete(r.ClientScopes, id)
	}
}

func (r *realm) applyPut(kind string, v json.RawMessage) error {
	var err error
	switch kind {
	case kindClient:
		c := &client{}
		if err = json.Unmarshal(v, c); err == nil {
			c.ensureMaps()
			r.putClient(c)
		}
	case kindUser:
		u := &user{}
		if err = json.Unmarshal(v, u); err == nil {
			u.ensureMaps()
			r.putUser(u)
		}
	case kindRole:
		ro := &role{}
		if err = json.Unmarshal(v, ro); err == nil {
			r.putRole(ro)
		}
	case kindClientScope:
		sc := &clientScope{}
		if err = json.Unmarshal(v, sc); err == nil {
			r.ClientScopes[sc.ID] = sc
		}
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		return fmt.Errorf("%s of realm %q: %w", kind, r.Name, err)
	}
	return nil
}
