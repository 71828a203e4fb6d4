package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// Retirements live under retire.<workspace>.<access key>, as plain JSON:
// they hold no secret (the old pair's secret stays in nobody's hands but
// its holder's), and no workspace name starts with "retire".
const retirePrefix = "retire."

type retirement struct {
	Workspace string    `json:"workspace"`
	Username  string    `json:"username"`
	AccessKey string    `json:"access_key"`
	Until     time.Time `json:"until"`
	Actor     string    `json:"actor,omitempty"`
	CommandID string    `json:"command_id,omitempty"`
}

func retireKey(ws, accessKey string) string { return retirePrefix + ws + "." + accessKey }

// Retire records r; recording it again changes nothing but its time.
func (s *Store) Retire(ctx context.Context, r sagas.Retirement) error {
	raw, err := json.Marshal(retirement(r))
	if err != nil {
		return fmt.Errorf("encode retirement: %w", err)
	}
	if _, err := s.kv.Put(ctx, retireKey(r.Workspace, r.AccessKey), raw); err != nil {
		return fmt.Errorf("record retirement of a key of %s: %w", r.Workspace, err)
	}
	return nil
}

// Retirements lists every recorded retirement.
func (s *Store) Retirements(ctx context.Context) ([]sagas.Retirement, error) {
	keys, err := s.keys(ctx, retirePrefix+">")
	if err != nil {
		return nil, fmt.Errorf("list retirements: %w", err)
	}
	out := make([]sagas.Retirement, 0, len(keys))
	for _, k := range keys {
		e, err := s.kv.Get(ctx, k)
		if events.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read retirement %s: %w", strings.TrimPrefix(k, retirePrefix), err)
		}
		var r retirement
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("decode retirement %s: %w", strings.TrimPrefix(k, retirePrefix), err)
		}
		out = append(out, sagas.Retirement(r))
	}
	return out, nil
}

// Retired forgets r; absent is success.
func (s *Store) Retired(ctx context.Context, r sagas.Retirement) error {
	if err := s.kv.Purge(ctx, retireKey(r.Workspace, r.AccessKey)); err != nil && !events.IsNotFound(err) {
		return fmt.Errorf("forget retirement of a key of %s: %w", r.Workspace, err)
	}
	return nil
}
