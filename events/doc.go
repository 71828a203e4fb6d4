// Package events defines the messages that flow through the system: the
// CloudEvents envelope, one Go type per command and event, the subject
// scheme, the JetStream streams and KV buckets, and the publisher.
package events
