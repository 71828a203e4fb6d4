// Package schemas holds the JSON Schema of every event type, embedded in
// the binary, and validates whole CloudEvents envelopes against them.
package schemas
