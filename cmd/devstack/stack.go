package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// stack is the set of parts devstack runs, in start order.
type stack struct {
	cfg    Config
	ports  Ports
	logs   io.Writer
	logMu  sync.Mutex
	parts  []part
	writes []*prefixWriter
}

func (s *stack) url(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

func (s *stack) logWriter(name string) *prefixWriter {
	w := newPrefixWriter(&s.logMu, s.logs, name)
	s.writes = append(s.writes, w)
	return w
}

// start brings up MinIO and the Keycloak emulator side by side, then the
// provisioner, which needs both; it returns once every part answers. On
// error the parts already running are left for stop.
func (s *stack) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	var (
		wg           sync.WaitGroup
		mu           sync.Mutex
		minioErr     error
		keycloakErr  error
		minio, kcemu part
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		p, err := s.startMinIO(ctx)
		if err != nil {
			cancel() // no use waiting for the other one
		}
		mu.Lock()
		minio, minioErr = p, err
		mu.Unlock()
	}()
	go func() {
		defer wg.Done()
		p, err := s.startKeycloak(ctx)
		if err != nil {
			cancel()
		}
		mu.Lock()
		kcemu, keycloakErr = p, err
		mu.Unlock()
	}()
	wg.Wait()
	for _, p := range []part{minio, kcemu} {
		if p != nil {
			s.parts = append(s.parts, p)
		}
	}
	if err := errors.Join(minioErr, keycloakErr); err != nil {
		return err
	}
	prov, err := s.startProvisioner(ctx)
	if prov != nil {
		s.parts = append(s.parts, prov)
	}
	return err
}

// minioPart adapts the MinIO server to the supervisor.
type minioPart struct{ *minioserver.Server }

func (minioPart) Name() string { return "minio" }

func (s *stack) startMinIO(ctx context.Context) (part, error) {
	srv, err := minioserver.Start(ctx, minioserver.Options{
		Binary:       filepath.Join(s.cfg.BinDir, "minio"),
		DataDir:      filepath.Join(s.cfg.dataDir(), "minio"),
		Addr:         "127.0.0.1:" + strconv.Itoa(s.ports.MinIO),
		ConsoleAddr:  "127.0.0.1:" + strconv.Itoa(s.ports.MinIOConsole),
		RootUser:     s.cfg.MinIOUser,
		RootPassword: s.cfg.MinIOPass,
		Region:       defaultS3Region,
		Logs:         s.logWriter("minio"),
		StartTimeout: s.cfg.StartTimeout,
		StopTimeout:  s.cfg.StopTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	return minioPart{srv}, nil
}

// startKeycloak runs keycloak-real or keycloak-emulator: both take
// Keycloak's options and --dev-realm, and keep their state in --data-dir.
func (s *stack) startKeycloak(ctx context.Context) (part, error) {
	const name = "keycloak"
	env := append(os.Environ(),
		"KC_BOOTSTRAP_ADMIN_USERNAME="+s.cfg.KCAdminUser,
		"KC_BOOTSTRAP_ADMIN_PASSWORD="+s.cfg.KCAdminPass,
	)
	c, err := startChild(name, filepath.Join(s.cfg.BinDir, s.cfg.keycloakBinary()), s.cfg.Root, []string{
		"--http-host", "127.0.0.1",
		"--http-port", strconv.Itoa(s.ports.Keycloak),
		"--dev-realm",
		"--data-dir", s.cfg.keycloakDataDir(),
	}, env, s.logWriter(name), s.cfg.StopTimeout)
	if err != nil {
		return nil, err
	}
	master := s.url(s.ports.Keycloak) + "/realms/master/.well-known/openid-configuration"
	dev := s.url(s.ports.Keycloak) + "/realms/" + devRealm + "/.well-known/openid-configuration"
	return c, awaitReady(ctx, c, func(ctx context.Context) bool { return httpOK(ctx, master) && httpOK(ctx, dev) })
}

func (s *stack) startProvisioner(ctx context.Context) (part, error) {
	const name = "provisioner"
	natsAddr := "127.0.0.1:" + strconv.Itoa(s.ports.NATS)
	c, err := startChild(name, filepath.Join(s.cfg.BinDir, "provisioner"), s.cfg.Root, []string{
		"--http-addr", "127.0.0.1:" + strconv.Itoa(s.ports.API),
		"--data-dir", filepath.Join(s.cfg.dataDir(), "provisioner"),
		"--nats-listen", natsAddr,
		"--keycloak-url", s.url(s.ports.Keycloak),
		"--keycloak-realm", devRealm,
		"--keycloak-client-id", workerClientID,
		"--keycloak-client-secret", workerSecret,
		"--s3-endpoint", s.url(s.ports.MinIO),
		"--s3-region", defaultS3Region,
		"--minio-access-key", s.cfg.MinIOUser,
		"--minio-secret-key", s.cfg.MinIOPass,
		"--secret-key", s.cfg.SecretKey,
		// One worker owns this stack's store: after a kill, the restarted
		// one resumes the sagas it had leased at once.
		"--worker-id", "devstack",
	}, os.Environ(), s.logWriter(name), s.cfg.StopTimeout)
	if err != nil {
		return nil, err
	}
	ready := s.url(s.ports.API) + "/readyz"
	return c, awaitReady(ctx, c, func(ctx context.Context) bool {
		return httpOK(ctx, ready) && natsAnswers("nats://"+natsAddr)
	})
}

// awaitReady polls check until it holds, the part exits, or ctx ends.
func awaitReady(ctx context.Context, p part, check func(context.Context) bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if check(ctx) {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited before it was ready: %v", p.Name(), p.Err())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", p.Name(), ctx.Err())
		case <-tick.C:
		}
	}
}

func httpOK(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func natsAnswers(url string) bool {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		return false
	}
	nc.Close()
	return true
}

// died reports the first part that exits on its own.
func (s *stack) died() <-chan part {
	ch := make(chan part, len(s.parts))
	for _, p := range s.parts {
		go func() {
			<-p.Done()
			ch <- p
		}()
	}
	return ch
}

// stop ends the parts in reverse start order: the provisioner first, while
// what it talks to still answers, then MinIO and the emulator together.
func (s *stack) stop() error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := len(s.parts) - 1; i >= 0; i-- {
		p := s.parts[i]
		if p.Name() == "provisioner" {
			if err := p.Stop(); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, w := range s.writes {
		w.Flush()
	}
	return errors.Join(errs...)
}
