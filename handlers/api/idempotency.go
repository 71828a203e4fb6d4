package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
)

// HeaderIdempotencyKey makes a POST or DELETE safe to repeat.
const HeaderIdempotencyKey = "Idempotency-Key"

const maxIdempotencyKeyLen = 255

// idempotency is what an Idempotency-Key fixes about a request.
type idempotency struct {
	key         string // the Idempotency bucket key: a hash of actor and header
	requestHash string // what the request asked, to spot a reused key
	commandID   string // the envelope id, the same for every repeat
}

// stored is an answer kept under an Idempotency-Key.
type stored struct {
	RequestHash string          `json:"request_hash"`
	Status      int             `json:"status"`
	Body        json.RawMessage `json:"body"`
	Location    string          `json:"location,omitempty"`
}

// idempotent handles the Idempotency-Key header. Without it, it returns
// nil. With a key already answered for the same request it writes that
// answer again and reports done; for a different request it fails with 422.
// req is the decoded request; together with method and path it is what
// "the same request" means.
func (s *server) idempotent(ctx context.Context, w http.ResponseWriter, r *http.Request, p auth.Principal, req any) (*idempotency, bool, error) {
	header, present := r.Header[HeaderIdempotencyKey]
	if !present {
		return nil, false, nil
	}
	key := header[0]
	if len(header) != 1 || key == "" || len(key) > maxIdempotencyKeyLen || !visibleASCII(key) {
		return nil, false, errorf(http.StatusUnprocessableEntity, HeaderIdempotencyKey,
			fmt.Sprintf("Idempotency-Key must be one value of 1 to %d visible ASCII characters", maxIdempotencyKeyLen))
	}
	idem, err := s.newIdempotency(r, p, key, req)
	if err != nil {
		return nil, false, err
	}
	e, err := s.d.Idempotency.Get(ctx, idem.key)
	if err != nil {
		if events.IsNotFound(err) {
			return idem, false, nil
		}
		return nil, false, unavailable("cannot check the Idempotency-Key now", err)
	}
	var prev stored
	if err := json.Unmarshal(e.Value(), &prev); err != nil {
		return nil, false, fmt.Errorf("decode stored answer: %w", err)
	}
	if prev.RequestHash != idem.requestHash {
		return nil, false, errorf(http.StatusUnprocessableEntity, HeaderIdempotencyKey, "Idempotency-Key reused for a different request")
	}
	if prev.Location != "" {
		w.Header().Set("Location", prev.Location)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	writeRaw(w, prev.Status, prev.Body)
	s.metrics.replays.Inc()
	return idem, true, nil
}

func (s *server) newIdempotency(r *http.Request, p auth.Principal, key string, req any) (*idempotency, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request for its hash: %w", err)
	}
	reqHash := hashOf(r.Method, r.URL.Path, string(body))
	return &idempotency{
		key:         hashOf(p.Username, key),
		requestHash: reqHash,
		// The request hash is part of the id: were the same key sent
		// concurrently with two different bodies, neither command is
		// dropped as the other's duplicate.
		commandID: uuid.NewSHA1(s.idNS, []byte(p.Username+"\x00"+r.Method+"\x00"+r.URL.Path+"\x00"+key+"\x00"+reqHash)).String(),
	}, nil
}

// remember stores an answer under the request's key. A failure is only
// logged: the command is already published, and a repeat of the request
// derives the same command id, which JetStream drops as a duplicate.
func (s *server) remember(ctx context.Context, idem *idempotency, status int, body []byte, location string) {
	raw, err := json.Marshal(stored{RequestHash: idem.requestHash, Status: status, Body: body, Location: location})
	if err == nil {
		_, err = s.d.Idempotency.Create(ctx, idem.key, raw)
	}
	if err != nil && !events.IsConflict(err) { // a concurrent repeat stored it first
		s.log.Warn("store idempotent answer", zap.Error(err))
	}
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
