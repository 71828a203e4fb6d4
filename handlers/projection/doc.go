// Package projection is the inbound adapter that folds the
// WORKSPACE_EVENTS stream into the read model (package readmodel), one
// JetStream KV entry per workspace, with compare-and-set on each entry.
package projection
