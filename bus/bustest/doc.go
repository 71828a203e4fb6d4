// Package bustest starts the real embedded JetStream for tests, with the
// streams and KV buckets set up, and stops it when the test ends.
package bustest
