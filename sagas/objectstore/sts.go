package objectstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/tracing"
)

// MinIO's bounds for an AssumeRole session (config.MinExpiration and
// config.MaxExpiration in the pinned server), and its default.
const (
	MinSTSDuration     = 15 * time.Minute
	MaxSTSDuration     = 365 * 24 * time.Hour
	DefaultSTSDuration = time.Hour
)

// SessionRequest is what temporary credentials may do: the bucket, or
// the objects under Prefix only when it is set, read-only or not.
type SessionRequest struct {
	Bucket   string
	Prefix   string
	ReadOnly bool
	Duration time.Duration
}

// Session is a set of temporary credentials.
type Session struct {
	AccessKey, SecretKey, SessionToken string
	Expiration                         time.Time
}

// ErrSTSRefused means MinIO refused the parent keys (deleted, or a
// secret that is not theirs): the caller holds no storage identity.
var ErrSTSRefused = errors.New("object store refused the member's keys")

// refusedCodes are STS answers to keys MinIO does not know or accept.
var refusedCodes = map[string]bool{
	"InvalidClientTokenId": true, "SignatureDoesNotMatch": true, "AccessDenied": true, "InvalidAccessKeyId": true,
}

// AssumeRole asks MinIO's STS for temporary credentials on behalf of a
// member, signed with the member's own keys. A session policy narrows
// them to req: MinIO grants the intersection of it and the member's own
// policy, so a viewer's session is read-only whatever is asked, and the
// session dies with the member's user (MinIO removes a deleted user's
// sessions with it).
func (s *Store) AssumeRole(ctx context.Context, accessKey, secretKey string, req SessionRequest) (Session, error) {
	doc, err := sessionPolicy(req)
	if err != nil {
		return Session{}, err
	}
	host, secure, _ := s.cfg.hostAndSecure() // checked by New
	scheme := "http"
	if secure {
		scheme = "https"
	}
	creds, err := credentials.NewSTSAssumeRole(scheme+"://"+host, credentials.STSAssumeRoleOptions{
		AccessKey: accessKey, SecretKey: secretKey, Policy: string(doc),
		Location: s.cfg.Region, DurationSeconds: int(req.Duration / time.Second),
	})
	if err != nil {
		return Session{}, fmt.Errorf("assume role: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	client := &http.Client{Timeout: s.cfg.Timeout, Transport: tracing.Transport(nil)}
	v, err := creds.GetWithContext(&credentials.CredContext{Client: client, Context: ctx})
	if err != nil {
		var resp credentials.ErrorResponse
		if errors.As(err, &resp) && refusedCodes[resp.STSError.Code] {
			return Session{}, fmt.Errorf("assume role: %s: %w", resp.STSError.Code, ErrSTSRefused)
		}
		return Session{}, fmt.Errorf("assume role: %w", err)
	}
	return Session{AccessKey: v.AccessKeyID, SecretKey: v.SecretAccessKey, SessionToken: v.SessionToken, Expiration: v.Expiration}, nil
}

// sessionPolicy limits a session to the bucket, or to the objects under
// a prefix (and listing only below it), read-only when asked.
func sessionPolicy(req SessionRequest) ([]byte, error) {
	if err := validBucket(req.Bucket); err != nil {
		return nil, err
	}
	bucketARN := "arn:aws:s3:::" + req.Bucket
	objectActions := []string{"s3:*"}
	if req.ReadOnly {
		objectActions = readOnlyActions
	}
	if req.Prefix == "" {
		return policyDoc(statement{Effect: "Allow", Action: objectActions, Resource: []string{bucketARN, bucketARN + "/*"}})
	}
	return policyDoc(
		statement{Effect: "Allow", Action: []string{"s3:GetBucketLocation"}, Resource: []string{bucketARN}},
		statement{Effect: "Allow", Action: []string{"s3:ListBucket", "s3:ListBucketVersions"}, Resource: []string{bucketARN},
			Condition: map[string]any{"StringLike": map[string][]string{"s3:prefix": {req.Prefix, req.Prefix + "*"}}}},
		statement{Effect: "Allow", Action: objectActions, Resource: []string{bucketARN + "/" + req.Prefix + "*"}},
	)
}
