package keycloak

import (
	"context"
	"fmt"
	"time"

	"github.com/Nerzal/gocloak/v13"
)

// tokens caches the worker's access token and fetches a new one shortly
// before it expires, or when Keycloak refused it. One login at a time: the
// 1-slot channel is a mutex that a waiting caller can give up on when its
// context ends.
type tokens struct {
	login func(ctx context.Context) (*gocloak.JWT, error)
	now   func() time.Time

	lock   chan struct{}
	token  string
	expiry time.Time // when to stop using token: its expiry less a margin
}

func newTokens(login func(ctx context.Context) (*gocloak.JWT, error)) *tokens {
	return &tokens{login: login, now: time.Now, lock: make(chan struct{}, 1)}
}

// get returns a token valid for a while yet, logging in if needed.
func (t *tokens) get(ctx context.Context) (string, error) {
	select {
	case t.lock <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("wait for a Keycloak token: %w", ctx.Err())
	}
	defer func() { <-t.lock }()
	if t.token != "" && t.now().Before(t.expiry) {
		return t.token, nil
	}
	issued := t.now()
	jwt, err := t.login(ctx)
	if err != nil {
		return "", err
	}
	life := time.Duration(jwt.ExpiresIn) * time.Second
	// Renew a little early so a token does not expire on its way: a fifth
	// of its life, at most 30s.
	t.token, t.expiry = jwt.AccessToken, issued.Add(life-min(life/5, 30*time.Second))
	return t.token, nil
}

// reject drops token after Keycloak answered 401 to it, unless another
// caller has replaced it already (then that newer token is kept).
func (t *tokens) reject(ctx context.Context, token string) {
	select {
	case t.lock <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-t.lock }()
	if t.token == token {
		t.token = ""
	}
}
