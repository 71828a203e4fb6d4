package schemas_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
)

// heldUntil is a sample time, whole seconds so it survives a round trip.
var heldUntil = time.Date(2026, 12, 30, 12, 0, 0, 0, time.UTC)

// samples holds one valid payload per registered type; the test below
// fails when a type is added without one.
var samples = map[string]events.Payload{
	events.TypeCreate:             &events.Create{PreferredName: "Team A", DefaultOwner: "example-user-1"},
	events.TypeDelete:             &events.Delete{Purge: true, Force: true},
	events.TypeMemberAdd:          &events.MemberAdd{Username: "example-user-2", Role: events.RoleAccess},
	events.TypeMemberRemove:       &events.MemberRemove{Username: "example-user-2"},
	events.TypeRetry:              &events.Retry{},
	events.TypeStatusChanged:      &events.StatusChanged{Status: events.StatusReady, Previous: events.StatusProvisioning, Storage: &events.Storage{Bucket: "ws-team-a", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1"}},
	events.TypeStepCompleted:      &events.StepCompleted{Saga: "create", Step: "bucket"},
	events.TypeStepFailed:         &events.StepFailed{Saga: "create", Step: "bucket", Error: "boom", Retryable: true},
	events.TypeMemberAdded:        &events.MemberAdded{Username: "u", Role: events.RoleAdmin},
	events.TypeMemberRemoved:      &events.MemberRemoved{Username: "u"},
	events.TypeCredentialsRotate:  &events.CredentialsRotate{All: true, GraceSeconds: 60},
	events.TypeCredentialsMigrate: &events.CredentialsMigrate{},
	events.TypeCredentialsIssued:  &events.CredentialsIssued{Username: "u", Reason: "rotated", PreviousValidUntil: &until},
	events.TypeCredentialsRevoked: &events.CredentialsRevoked{Username: "u", Reason: "removed"},
	events.TypeSessionIssued:      &events.SessionIssued{Username: "u", Prefix: "data/", Expiration: until},
	events.TypeQuotaSet:           &events.QuotaSet{QuotaMB: &quota},
	events.TypeQuotaChanged:       &events.QuotaChanged{},
	events.TypeReconcile:          &events.Reconcile{},
	events.TypeDriftRepaired:      &events.DriftRepaired{Repaired: []events.Repair{{Kind: events.DriftBucket, Resource: "ws-a"}}},
	events.TypeDegraded:           &events.Degraded{Reason: "bucket ws-a is not ours", Kind: events.DriftBucket},
	events.TypeShareCreated:       &events.ShareCreated{ID: "0123456789abcdef", Path: "data/a.txt", ExpiresAt: until, MaxUses: 3},
	events.TypeShareRevoked:       &events.ShareRevoked{ID: "0123456789abcdef", Path: "data/a.txt", Uses: 1},
	events.TypeShareExpired:       &events.ShareExpired{ID: "0123456789abcdef", Path: "data/a.txt"},
	events.TypeShareUsedUp:        &events.ShareUsedUp{ID: "0123456789abcdef", Path: "data/a.txt", Uses: 3},
	events.TypeNameReleased:       &events.NameReleased{Reason: events.NameReleasedExpired, HeldUntil: &heldUntil},
}

var quota = int64(100)

var until = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// TestMemberAndRotationShapes checks the either-or rules of the
// membership and rotation commands.
func TestMemberAndRotationShapes(t *testing.T) {
	v := mustValidator(t)
	for _, tc := range []struct {
		p     events.Payload
		valid bool
	}{
		{&events.MemberAdd{ClientID: "notebook", Role: events.RoleViewer}, true},
		{&events.MemberAdd{Username: "u", ClientID: "notebook", Role: events.RoleAccess}, false},
		{&events.MemberAdd{Role: events.RoleAccess}, false},
		{&events.CredentialsRotate{Username: "u"}, true},
		{&events.CredentialsRotate{Username: "u", All: true}, false},
		{&events.CredentialsRotate{}, false},
		{&events.CredentialsRotate{All: true, GraceSeconds: -1}, false},
		{&events.QuotaSet{}, true}, // null: remove the quota
		{&events.QuotaSet{QuotaMB: new(int64)}, false},
		{&events.Create{PreferredName: "a", DefaultOwner: "u", QuotaMB: new(int64)}, false},
		{&events.Create{PreferredName: "a", DefaultOwner: "u", QuotaMB: &quota}, true},
	} {
		env, err := events.New("ws-team-a", tc.p, events.Meta{Actor: "example-admin"})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(env)
		if err := v.Validate(raw); (err == nil) != tc.valid {
			t.Errorf("%s %+v: valid = %v, want %v (%v)", env.Type, tc.p, err == nil, tc.valid, err)
		}
	}
}

func mustValidator(t *testing.T) *schemas.Validator {
	t.Helper()
	v, err := schemas.New()
	if err != nil {
		t.Fatalf("compile schemas: %v", err)
	}
	return v
}

func TestEveryGoTypeHasASchemaAndBack(t *testing.T) {
	v := mustValidator(t)
	goTypes := events.Types()
	schemaTypes := v.Types()
	slices.Sort(schemaTypes)
	if !slices.Equal(goTypes, schemaTypes) {
		t.Fatalf("Go types %v and schema types %v differ", goTypes, schemaTypes)
	}
	for _, typ := range goTypes {
		p, ok := samples[typ]
		if !ok {
			t.Errorf("no sample payload for %s", typ)
			continue
		}
		env, err := events.New("ws-team-a", p, events.Meta{Actor: "example-admin"})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(env)
		if err := v.Validate(raw); err != nil {
			t.Errorf("%s: valid sample rejected: %v", typ, err)
		}
		back, err := env.DecodeData()
		if err != nil {
			t.Errorf("%s: decode: %v", typ, err)
		}
		if back.EventType() != typ {
			t.Errorf("decoded %s as %s", typ, back.EventType())
		}
	}
}

func TestRejectsWithTheFieldToFix(t *testing.T) {
	v := mustValidator(t)
	good := map[string]any{
		"specversion": "1.0", "id": "1", "source": "test", "type": "workspace.create",
		"subject": "ws-a", "time": time.Now().UTC().Format(time.RFC3339Nano),
		"datacontenttype": "application/json", "actor": "someone", "correlationid": "1",
		"data": map[string]any{"preferred_name": "a", "default_owner": "u"},
	}
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"missing owner", func(m map[string]any) { delete(m["data"].(map[string]any), "default_owner") }, "data"},
		{"unknown data field", func(m map[string]any) { m["data"].(map[string]any)["colour"] = "red" }, "data"},
		{"bad subject", func(m map[string]any) { m["subject"] = "WS_A" }, "subject"},
		{"no actor", func(m map[string]any) { delete(m, "actor") }, ""},
		{"bad time", func(m map[string]any) { m["time"] = "yesterday" }, "time"},
		{"unknown type", func(m map[string]any) { m["type"] = "workspace.explode" }, "type"},
		{"bad role", func(m map[string]any) {
			m["type"] = "workspace.member.add"
			m["data"] = map[string]any{"username": "u", "role": "root"}
		}, "data.role"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := clone(good)
			tc.edit(m)
			raw, _ := json.Marshal(m)
			err := v.Validate(raw)
			var se *schemas.Error
			if !errors.As(err, &se) {
				t.Fatalf("want *schemas.Error, got %v", err)
			}
			if se.Field != tc.field || se.Reason == "" {
				t.Fatalf("field %q reason %q, want field %q", se.Field, se.Reason, tc.field)
			}
		})
	}
	raw, _ := json.Marshal(good)
	if err := v.Validate(raw); err != nil {
		t.Fatalf("good event rejected: %v", err)
	}
	if err := v.Validate([]byte("{not json")); err == nil {
		t.Fatal("broken JSON accepted")
	}
}

func clone(m map[string]any) map[string]any {
	raw, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}
