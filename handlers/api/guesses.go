package api

import (
	"net"
	"net/http"
	"sync"

	"golang.org/x/time/rate"
)

// guessLimiter counts wrong share links per client address: each one
// takes a token from the address's bucket, which refills at perMinute;
// an address with an empty bucket gets 429 on every share link until it
// refills, so secrets cannot be guessed at speed (they are 256 bits
// anyway; this keeps the API from serving as an oracle). Addresses are
// the connection's: behind a proxy, that is the proxy's.
type guessLimiter struct {
	mu    sync.Mutex
	per   map[string]*rate.Limiter
	every rate.Limit
	burst int
}

// maxTrackedAddrs bounds the map; past it, addresses with a full bucket
// (no recent wrong guess) are forgotten.
const maxTrackedAddrs = 10000

func newGuessLimiter(perMinute int) *guessLimiter {
	return &guessLimiter{per: map[string]*rate.Limiter{}, every: rate.Limit(float64(perMinute) / 60), burst: perMinute}
}

// blocked reports whether addr has no wrong guess left.
func (g *guessLimiter) blocked(addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.per[addr]
	return ok && l.Tokens() < 1
}

// miss counts one wrong guess from addr.
func (g *guessLimiter) miss(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.per[addr]
	if !ok {
		if len(g.per) >= maxTrackedAddrs {
			g.forgetIdle()
		}
		l = rate.NewLimiter(g.every, g.burst)
		g.per[addr] = l
	}
	l.Allow()
}

func (g *guessLimiter) forgetIdle() {
	for addr, l := range g.per {
		if l.Tokens() >= float64(g.burst) {
			delete(g.per, addr)
		}
	}
}

// clientAddr is the IP the request came from.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
