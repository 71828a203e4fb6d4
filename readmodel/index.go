package readmodel

import "slices"

// index keeps, under each key, the names of the workspaces that have it,
// sorted, so a page of a filtered list starts with a binary search and
// reads matches only: its cost does not grow with the workspaces the
// filter leaves out. A workspace is kept under its status, its owner, each
// user who may read it, and each of those with its status (indexKeys);
// the pairs serve the commonest selective query, a member's workspaces in
// one status. Sorted slices rather than a tree: a change moves at most
// one slice's tail (micro-seconds at 10,000 names), reads stay plain.
type index map[string][]string

func statusKey(status string) string             { return "s\x00" + status }
func ownerKey(owner string) string               { return "o\x00" + owner }
func ownerStatusKey(owner, status string) string { return "os\x00" + owner + "\x00" + status }
func readerKey(user string) string               { return "r\x00" + user }
func readerStatusKey(user, status string) string { return "rs\x00" + user + "\x00" + status }

// indexKeys are the keys ws is kept under.
func indexKeys(ws *Workspace) []string {
	keys := []string{statusKey(ws.Status)}
	if ws.Owner != "" {
		keys = append(keys, ownerKey(ws.Owner), ownerStatusKey(ws.Owner, ws.Status))
	}
	for _, u := range ws.Readers() {
		keys = append(keys, readerKey(u), readerStatusKey(u, ws.Status))
	}
	return keys
}

// move re-files name from the keys of old (nil when it was not held) to
// those of now (nil when it is gone); keys both have are left alone.
func (x index) move(name string, old, now *Workspace) {
	var before, after []string
	if old != nil {
		before = indexKeys(old)
	}
	if now != nil {
		after = indexKeys(now)
	}
	for _, k := range before {
		if !slices.Contains(after, k) {
			x.remove(k, name)
		}
	}
	for _, k := range after {
		if !slices.Contains(before, k) {
			x.add(k, name)
		}
	}
}

func (x index) add(key, name string) {
	s := x[key]
	if i, found := slices.BinarySearch(s, name); !found {
		x[key] = slices.Insert(s, i, name)
	}
}

func (x index) remove(key, name string) {
	s := x[key]
	i, found := slices.BinarySearch(s, name)
	if !found {
		return
	}
	if len(s) == 1 {
		delete(x, key) // keys come and go with users; keep no empty ones
		return
	}
	x[key] = slices.Delete(s, i, i+1)
}

// narrowest returns the shortest sorted list of names that holds every
// workspace matching f: all when f narrows nothing, an empty list when a
// key f needs has no workspace at all.
func (x index) narrowest(f Filter, all []string) []string {
	best := all
	consider := func(key string) {
		if s := x[key]; len(s) < len(best) {
			best = s
		}
	}
	if f.Status != "" {
		consider(statusKey(f.Status))
	}
	if f.Owner != "" {
		consider(ownerKey(f.Owner))
		if f.Status != "" {
			consider(ownerStatusKey(f.Owner, f.Status))
		}
	}
	if f.Reader != "" {
		consider(readerKey(f.Reader))
		if f.Status != "" {
			consider(readerStatusKey(f.Reader, f.Status))
		}
	}
	return best
}
