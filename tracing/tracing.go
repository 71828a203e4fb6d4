package tracing

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Name names this project's tracer.
const Name = "github.com/eo-workspaces/provisioner"

// Tracer is the project's tracer from the global provider, so a test may
// install its own provider before the code under test runs.
func Tracer() trace.Tracer { return otel.Tracer(Name) }

// Enabled reports whether the environment asks for trace export, as the
// OpenTelemetry specification's variables say: OTEL_TRACES_EXPORTER=otlp,
// or an OTLP endpoint without OTEL_TRACES_EXPORTER=none.
func Enabled() bool {
	switch os.Getenv("OTEL_TRACES_EXPORTER") {
	case "otlp":
		return true
	case "none":
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs the W3C trace-context propagator always, and, when
// Enabled, a provider exporting over OTLP/HTTP (configured by the
// standard OTEL_EXPORTER_OTLP_* variables). The returned shutdown flushes
// what is pending.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if !Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// Inject writes ctx's trace context into NATS message headers.
func Inject(ctx context.Context, h nats.Header) {
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract returns ctx carrying the trace context of NATS message headers.
func Extract(ctx context.Context, h nats.Header) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(h))
}

// Transport traces the HTTP calls made through next (the providers').
func Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return otelhttp.NewTransport(next)
}

// Handler traces the requests h serves under the span name route (its
// ServeMux pattern), continuing a trace the caller sent.
func Handler(route string, h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, route)
}
