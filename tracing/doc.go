// Package tracing sets up OpenTelemetry tracing for the provisioner: the
// trace context travels from an API request through the NATS headers of
// the command into every saga step and provider call. It is off unless
// the standard OTEL_* variables ask for an exporter.
package tracing
