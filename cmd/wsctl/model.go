package main

import (
	"encoding/json"
	"time"
)

// member is one member as the API shows it.
type member struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Kind     string `json:"kind"`
	ClientID string `json:"client_id,omitempty"`
}

// workspace is GET /workspaces/{name} and a list item; unknown fields are
// kept so -o json shows everything the API sent.
type workspace struct {
	Name            string          `json:"name"`
	Status          string          `json:"status"`
	Owner           string          `json:"owner"`
	Members         []member        `json:"members"`
	Step            string          `json:"step,omitempty"`
	LastError       string          `json:"last_error,omitempty"`
	FailedStep      string          `json:"failed_step,omitempty"`
	LastMemberError string          `json:"last_member_error,omitempty"`
	QuotaMB         *int64          `json:"quota_mb,omitempty"`
	Storage         *storage        `json:"storage"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	Usage           json.RawMessage `json:"usage,omitempty"`
}

type storage struct {
	Credentials map[string]string `json:"credentials"`
}

// accepted is the API's answer to a command.
type accepted struct {
	Name      string `json:"name"`
	Status    string `json:"status,omitempty"`
	Username  string `json:"username,omitempty"`
	Role      string `json:"role,omitempty"`
	CommandID string `json:"command_id"`
}

// page is one page of a list.
type page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// historyItem is one entry of GET /workspaces/{name}/events.
type historyItem struct {
	Kind     string          `json:"kind"`
	Stream   string          `json:"stream"`
	Sequence uint64          `json:"sequence"`
	Time     time.Time       `json:"time"`
	Event    json.RawMessage `json:"event"`
}

// envelope decodes the item's CloudEvent; a malformed one reads as empty.
func (h historyItem) envelope() cloudEvent {
	var ce cloudEvent
	_ = json.Unmarshal(h.Event, &ce)
	return ce
}

// cloudEvent is the envelope with its data left raw.
type cloudEvent struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Subject       string          `json:"subject"`
	Time          time.Time       `json:"time"`
	Actor         string          `json:"actor"`
	CorrelationID string          `json:"correlationid"`
	Data          json.RawMessage `json:"data"`
}
