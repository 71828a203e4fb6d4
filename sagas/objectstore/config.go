package objectstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults for Config.
const (
	DefaultRegion  = "us-east-1"
	DefaultTimeout = 30 * time.Second
)

// Config says where MinIO is and how the worker signs in to it.
type Config struct {
	// Endpoint is host:port, or a URL whose scheme (http or https) then
	// decides Secure.
	Endpoint string
	// AccessKey and SecretKey are credentials allowed to administer
	// buckets, policies and users (the root user in the dev stack).
	AccessKey, SecretKey string
	// Region is the region buckets are created in (default us-east-1).
	Region string
	// Secure selects https for a host:port Endpoint.
	Secure bool
	// Timeout bounds each adapter call, the clients' own retries included
	// (default 30s).
	Timeout time.Duration
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate reports the first field that cannot work, by name.
func (c Config) Validate() error {
	if _, _, err := c.hostAndSecure(); err != nil {
		return err
	}
	switch {
	case c.AccessKey == "":
		return errors.New("objectstore: AccessKey is required")
	case c.SecretKey == "":
		return errors.New("objectstore: SecretKey is required")
	case c.Timeout < 0:
		return errors.New("objectstore: Timeout must not be negative")
	}
	return nil
}

// hostAndSecure splits Endpoint into the host:port both clients want and
// whether to use TLS.
func (c Config) hostAndSecure() (string, bool, error) {
	if c.Endpoint == "" {
		return "", false, errors.New("objectstore: Endpoint is required")
	}
	if !strings.Contains(c.Endpoint, "://") {
		if strings.ContainsAny(c.Endpoint, "/?#") {
			return "", false, fmt.Errorf("objectstore: Endpoint %q: want host:port or a URL", c.Endpoint)
		}
		return c.Endpoint, c.Secure, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return "", false, fmt.Errorf("objectstore: Endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("objectstore: Endpoint %q: scheme must be http or https", c.Endpoint)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false, fmt.Errorf("objectstore: Endpoint %q: want scheme://host:port and nothing more", c.Endpoint)
	}
	return u.Host, u.Scheme == "https", nil
}
