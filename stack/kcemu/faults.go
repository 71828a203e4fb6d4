package kcemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
)

// FaultKind is what an injected fault does to a matching request.
type FaultKind string

const (
	Status500 FaultKind = "500"  // answer 500 with Keycloak's unknown_error body
	Status503 FaultKind = "503"  // answer 503, as a proxy in front of a restarting Keycloak does
	Hang      FaultKind = "hang" // hold the request until the client gives up or the server closes
	Drop      FaultKind = "drop" // close the connection without answering
)

// Fault makes matching requests fail. Method "" matches any method; Path is
// a regular expression on the URL path; Times 0 means until removed.
type Fault struct {
	Method string    `json:"method,omitempty"`
	Path   string    `json:"path"`
	Kind   FaultKind `json:"kind"`
	Times  int       `json:"times,omitempty"`
}

// Faults holds the active faults. It is safe for concurrent use.
type Faults struct {
	mu     sync.Mutex
	nextID int
	active []*activeFault
}

type activeFault struct {
	id   int
	f    Fault
	re   *regexp.Regexp
	left int // remaining uses; -1 = forever
}

func newFaults() *Faults { return &Faults{} }

// Add activates fault and returns a function that removes it. A fault with a
// bad regexp or kind never matches; use the HTTP API to see such errors.
func (f *Faults) Add(fault Fault) (remove func()) {
	id, _ := f.add(fault)
	return func() { f.remove(id) }
}

func (f *Faults) add(fault Fault) (int, error) {
	switch fault.Kind {
	case Status500, Status503, Hang, Drop:
	default:
		return 0, fmt.Errorf("unknown fault kind %q (want 500, 503, hang or drop)", fault.Kind)
	}
	re, err := regexp.Compile(fault.Path)
	if err != nil {
		return 0, fmt.Errorf("fault path: %w", err)
	}
	left := fault.Times
	if left <= 0 {
		left = -1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.active = append(f.active, &activeFault{id: f.nextID, f: fault, re: re, left: left})
	return f.nextID, nil
}

func (f *Faults) remove(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.active {
		if a.id == id {
			f.active = append(f.active[:i], f.active[i+1:]...)
			return
		}
	}
}

// Clear removes every fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active = nil
}

// take returns the kind of the first fault matching r, using one of its times.
func (f *Faults) take(r *http.Request) (FaultKind, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.active {
		if a.f.Method != "" && !strings.EqualFold(a.f.Method, r.Method) {
			continue
		}
		if !a.re.MatchString(r.URL.Path) {
			continue
		}
		if a.left > 0 {
			a.left--
			if a.left == 0 {
				f.active = append(f.active[:i], f.active[i+1:]...)
			}
		}
		return a.f.Kind, true
	}
	return "", false
}

func (f *Faults) middleware(closing <-chan struct{}, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, faultsPath) {
			next.ServeHTTP(w, r)
			return
		}
		kind, ok := f.take(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		switch kind {
		case Status500:
			writeOAuthError(w, http.StatusInternalServerError, "unknown_error",
				"For more on this error consult the server log.")
		case Status503:
			writeError(w, http.StatusServiceUnavailable, "Service Unavailable")
		case Hang:
			select {
			case <-r.Context().Done():
			case <-closing:
			}
		case Drop:
			drop(w)
		}
	})
}

// drop closes the connection without a response.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// faultsPath is where fault injection is exposed over HTTP; Keycloak has no
// such path, so it can never shadow a real endpoint.
const faultsPath = "/_emulator/faults"

type faultOut struct {
	ID int `json:"id"`
	Fault
	Left int `json:"left"`
}

func (s *Server) routeFaultsAPI(mux *http.ServeMux) {
	f := s.faults
	mux.HandleFunc("GET "+faultsPath, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		out := []faultOut{}
		for _, a := range f.active {
			out = append(out, faultOut{ID: a.id, Fault: a.f, Left: a.left})
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST "+faultsPath, func(w http.ResponseWriter, r *http.Request) {
		var fault Fault
		if err := json.NewDecoder(r.Body).Decode(&fault); err != nil {
			writeError(w, http.StatusBadRequest, "fault body: "+err.Error())
			return
		}
		id, err := f.add(fault)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.Header().Set("Location", fmt.Sprintf("%s/%d", faultsPath, id))
		writeJSON(w, http.StatusCreated, map[string]int{"id": id})
	})
	mux.HandleFunc("DELETE "+faultsPath, func(w http.ResponseWriter, r *http.Request) {
		f.Clear()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE "+faultsPath+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		var id int
		if _, err := fmt.Sscan(r.PathValue("id"), &id); err != nil {
			writeError(w, http.StatusBadRequest, "fault id must be a number")
			return
		}
		f.remove(id)
		w.WriteHeader(http.StatusNoContent)
	})
}
