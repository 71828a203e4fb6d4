package kcemu

import "net/http"

// routeMappers serves a client's protocol mappers (the audience mapper is
// the one tokens honour), as Keycloak's .../protocol-mappers/models.
func (s *Server) routeMappers(mux *http.ServeMux, c string) {
	m := c + "/protocol-mappers/models"
	mux.HandleFunc("GET "+m, s.admin(false, viewClients, withClient(listMappers)))
	mux.HandleFunc("POST "+m, s.admin(true, manageClients, withClient(createMapper)))
	mux.HandleFunc("GET "+m+"/{mapper}", s.admin(false, viewClients, withClient(withMapper(getMapper))))
	mux.HandleFunc("PUT "+m+"/{mapper}", s.admin(true, manageClients, withClient(withMapper(updateMapper))))
	mux.HandleFunc("DELETE "+m+"/{mapper}", s.admin(true, manageClients, withClient(withMapper(deleteMapper))))
}

var mapperNotFound = errReply(http.StatusNotFound, "Model not found")

func withMapper(h func(*adminCall, *client, int) (reply, bool)) func(*adminCall, *client) (reply, bool) {
	return func(a *adminCall, c *client) (reply, bool) {
		for i, m := range c.ProtocolMappers {
			if m.ID == a.r.PathValue("mapper") {
				return h(a, c, i)
			}
		}
		return mapperNotFound, false
	}
}

func listMappers(_ *adminCall, c *client) (reply, bool) {
	return ok(append([]protocolMapper{}, c.ProtocolMappers...)), false
}

func getMapper(_ *adminCall, c *client, i int) (reply, bool) { return ok(c.ProtocolMappers[i]), false }

func createMapper(a *adminCall, c *client) (reply, bool) {
	var m protocolMapper
	if !a.decode(&m) || m.Name == "" || m.ProtocolMapper == "" {
		return cannotParse, false
	}
	for _, have := range c.ProtocolMappers {
		if have.Name == m.Name {
			return errMsgReply(http.StatusConflict, "Protocol mapper exists with same name"), false
		}
	}
	m.ID = newID()
	if m.Protocol == "" {
		m.Protocol = "openid-connect"
	}
	c.ProtocolMappers = append(c.ProtocolMappers, m)
	return created(a.base + a.r.URL.Path + "/" + m.ID), true
}

func updateMapper(a *adminCall, c *client, i int) (reply, bool) {
	var m protocolMapper
	if !a.decode(&m) {
		return cannotParse, false
	}
	m.ID = c.ProtocolMappers[i].ID
	if m.Name == "" {
		m.Name = c.ProtocolMappers[i].Name
	}
	if m.ProtocolMapper == "" {
		m.ProtocolMapper = c.ProtocolMappers[i].ProtocolMapper
	}
	c.ProtocolMappers[i] = m
	return noContent(), true
}

func deleteMapper(_ *adminCall, c *client, i int) (reply, bool) {
	c.ProtocolMappers = append(c.ProtocolMappers[:i], c.ProtocolMappers[i+1:]...)
	return noContent(), true
}
