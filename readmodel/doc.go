// Package readmodel is the workspace read model: its shape (Workspace),
// the pure fold of events into it (Apply, which the projection runs), and
// the Reader that serves queries from an in-memory copy of the projection
// bucket kept current by a KV watch.
package readmodel
