// Package secrets keeps workspace storage credentials in a JetStream KV
// bucket, encrypted at rest with AES-256-GCM under a configured key.
package secrets
