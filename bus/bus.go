package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Config chooses the server. With URL empty, an embedded server runs with
// its store under DataDir.
type Config struct {
	URL     string // external server or cluster, e.g. nats://a:4222,nats://b:4222
	DataDir string // embedded: the JetStream store lives in DataDir/nats
	// Listen is the embedded server's client address (host:port) so that
	// other processes can connect; empty means in-process connections only.
	Listen string
	// Name identifies this client in server monitoring.
	Name string
	// ReadyTimeout bounds the wait for the embedded server.
	ReadyTimeout time.Duration
}

// DefaultReadyTimeout bounds the wait for the embedded server.
const DefaultReadyTimeout = 30 * time.Second

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	return c
}

// Validate reports a configuration that cannot work, naming the field.
func (c Config) Validate() error {
	if c.URL == "" && c.DataDir == "" {
		return errors.New("nats: either a URL or a data directory for the embedded server is required")
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("nats listen address %q: %w", c.Listen, err)
		}
	}
	return nil
}

// Bus is a live connection, and the embedded server if there is one.
type Bus struct {
	Conn   *nats.Conn
	JS     jetstream.JetStream
	server *server.Server
}

// Connect starts the embedded server if configured and connects to it.
func Connect(ctx context.Context, cfg Config, log *zap.Logger) (*Bus, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", zap.String("url", c.ConnectedUrl())) }),
	}
	b := &Bus{}
	url := cfg.URL
	if url == "" {
		s, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		b.server = s
		opts = append(opts, nats.InProcessServer(s))
		log.Info("embedded nats started", zap.String("store", filepath.Join(cfg.DataDir, "nats")),
			zap.String("client_url", b.ClientURL()))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("connect to nats %q: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b.Conn, b.JS = nc, Bounded(js)
	return b, nil
}

func startEmbedded(cfg Config) (*server.Server, error) {
	o := &server.Options{
		ServerName: "provisioner",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		NoSigs:     true,
		NoLog:      true,
		DontListen: cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, port, _ := net.SplitHostPort(cfg.Listen)
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats listen port %q: %w", port, err)
		}
		o.Host, o.Port = host, p
		if p == 0 {
			o.Port = server.RANDOM_PORT
		}
	}
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats not ready within %s (store %s)", cfg.ReadyTimeout, o.StoreDir)
	}
	return s, nil
}

// ClientURL is the embedded server's client URL, or "" for an external one.
func (b *Bus) ClientURL() string {
	if b.server == nil || b.server.Addr() == nil {
		return ""
	}
	return b.server.ClientURL()
}

// Embedded reports whether this process runs the server.
func (b *Bus) Embedded() bool { return b.server != nil }

// Healthy reports whether the connection is up.
func (b *Bus) Healthy() bool { return b.Conn != nil && b.Conn.IsConnected() }

// Close drains the connection, letting in-flight publishes finish, then
// stops the embedded server so its store is flushed.
func (b *Bus) Close(ctx context.Context) error {
	var err error
	if b.Conn != nil {
		done := make(chan struct{})
		b.Conn.SetClosedHandler(func(*nats.Conn) { close(done) })
		if derr := b.Conn.Drain(); derr != nil {
			b.Conn.Close()
		} else {
			select {
			case <-done:
			case <-ctx.Done():
				b.Conn.Close()
				err = ctx.Err()
			}
		}
	}
	b.shutdownServer()
	return err
}

func (b *Bus) shutdownServer() {
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
	}
}
