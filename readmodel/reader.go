package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// Reader answers queries from an in-memory copy of the read model that a
// KV watch keeps current, so a read costs no round trip to the server.
type Reader struct {
	mu     sync.RWMutex
	byName map[string]*Workspace
	names  []string // sorted, for cursor pagination
	index  index    // subsets of names by status, owner and reader
	ready  chan struct{}
	log    *zap.Logger
	subs   map[chan Workspace]struct{} // live views, under mu
}

// NewReader returns an empty reader; Run fills it.
func NewReader(log *zap.Logger) *Reader {
	return &Reader{byName: map[string]*Workspace{}, index: index{}, ready: make(chan struct{}), log: log,
		subs: map[chan Workspace]struct{}{}}
}

// Run watches the projection bucket until ctx ends. Ready is closed once
// the initial values are loaded.
func (r *Reader) Run(ctx context.Context, js jetstream.JetStream) error {
	kv, err := js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		return fmt.Errorf("projection bucket: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch projection: %w", err)
	}
	defer func() { _ = w.Stop() }()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil { // end of the initial values
				if initial {
					close(r.ready)
					initial = false
				}
				continue
			}
			r.apply(e)
		}
	}
}

// Ready is closed once the reader has caught up with the bucket.
func (r *Reader) Ready() <-chan struct{} { return r.ready }

func (r *Reader) apply(e jetstream.KeyValueEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		r.drop(name)
		r.notify(Workspace{Name: name}) // gone from the model (a rebuild purges it)
		return
	}
	var ws Workspace
	if err := json.Unmarshal(e.Value(), &ws); err != nil {
		r.log.Error("projection reader: undecodable entry", zap.String("key", name), zap.Error(err))
		return
	}
	r.put(name, &ws)
	r.notify(clone(&ws))
}

// put holds ws under name, and files it in the index; it runs under r.mu.
func (r *Reader) put(name string, ws *Workspace) {
	old, exists := r.byName[name]
	if !exists {
		i, _ := slices.BinarySearch(r.names, name)
		r.names = slices.Insert(r.names, i, name)
	}
	r.index.move(name, old, ws)
	r.byName[name] = ws
}

// drop forgets name; it runs under r.mu.
func (r *Reader) drop(name string) {
	old, exists := r.byName[name]
	if !exists {
		return
	}
	r.index.move(name, old, nil)
	delete(r.byName, name)
	if i, ok := slices.BinarySearch(r.names, name); ok {
		r.names = slices.Delete(r.names, i, i+1)
	}
}

// Subscribe returns a channel that receives every workspace written to the
// model after the call (one with only a Name when it was removed), and a
// function that ends the subscription. A subscriber more than buffer
// changes behind is dropped, its channel closed: it should list again and
// subscribe anew, rather than slow the model down for everyone.
func (r *Reader) Subscribe(buffer int) (<-chan Workspace, func()) {
	ch := make(chan Workspace, buffer)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[ch]; ok {
			delete(r.subs, ch)
			close(ch)
		}
	}
}

// notify hands a change to every subscriber; it runs under r.mu.
func (r *Reader) notify(ws Workspace) {
	for ch := range r.subs {
		select {
		case ch <- ws:
		default:
			delete(r.subs, ch)
			close(ch)
		}
	}
}

// Get returns a copy of one workspace.
func (r *Reader) Get(name string) (Workspace, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ws, ok := r.byName[name]
	if !ok {
		return Workspace{}, false
	}
	return clone(ws), true
}

// Filter selects workspaces in a list.
type Filter struct {
	Status string
	Owner  string
	// Reader, if set, keeps the workspaces this user may read
	// (Workspace.CanRead): the list of a caller who is not a platform admin.
	Reader string
}

// List returns up to limit workspaces with names after cursor, in name
// order, and the cursor of the next page ("" when there is none). It
// walks the narrowest index list that f allows, so a page costs a binary
// search and the entries of that list it reads, whatever the size.
func (r *Reader) List(f Filter, cursor string, limit int) ([]Workspace, string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := r.index.narrowest(f, r.names)
	start := sort.SearchStrings(names, cursor)
	if start < len(names) && names[start] == cursor {
		start++
	}
	out := make([]Workspace, 0, min(limit, 64))
	for i := start; i < len(names); i++ {
		ws := r.byName[names[i]]
		if !f.match(ws) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Name
		}
		out = append(out, clone(ws))
	}
	return out, ""
}

func (f Filter) match(ws *Workspace) bool {
	return (f.Status == "" || ws.Status == f.Status) &&
		(f.Owner == "" || ws.Owner == f.Owner) &&
		(f.Reader == "" || ws.CanRead(f.Reader))
}

// Len is the number of workspaces held.
func (r *Reader) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.names)
}

func clone(ws *Workspace) Workspace {
	c := *ws
	c.Members = slices.Clone(ws.Members)
	if ws.Storage != nil {
		s := *ws.Storage
		c.Storage = &s
	}
	return c
}
