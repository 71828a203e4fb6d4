// Package bus connects the process to NATS JetStream: by default an
// embedded nats-server with JetStream on a file store, or an external
// server or cluster given by URL.
package bus
