// Package progress keeps saga records (sagas.ProgressStore) in a
// JetStream KV bucket, one key per workspace, written with compare-and-set.
package progress
