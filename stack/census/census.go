package census

import (
	"context"
	"fmt"

	"github.com/Nerzal/gocloak/v13"
	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// Keycloak is where the clients are counted: a realm, read with the
// master realm's admin.
type Keycloak struct{ URL, AdminUser, AdminPassword, Realm string }

// Count is what the providers hold, by name: Keycloak clients by
// clientId, buckets by name, MinIO users by the policy they hold (a
// workspace's read-write policy is named after it).
type Count struct {
	Clients, Buckets, Users map[string]int
}

// Take counts the realm's clients and MinIO's buckets and users.
func Take(ctx context.Context, kc Keycloak, mio *minioserver.Server) (Count, error) {
	c := Count{Clients: map[string]int{}, Buckets: map[string]int{}, Users: map[string]int{}}
	gc := gocloak.NewClient(kc.URL)
	tok, err := gc.LoginAdmin(ctx, kc.AdminUser, kc.AdminPassword, "master")
	if err != nil {
		return c, fmt.Errorf("census: keycloak admin: %w", err)
	}
	clients, err := gc.GetClients(ctx, tok.AccessToken, kc.Realm, gocloak.GetClientsParams{})
	if err != nil {
		return c, fmt.Errorf("census: clients: %w", err)
	}
	for _, cl := range clients {
		c.Clients[gocloak.PString(cl.ClientID)]++
	}
	creds := credentials.NewStaticV4(mio.RootUser(), mio.RootPassword(), "")
	s3, err := minio.New(mio.Endpoint(), &minio.Options{Creds: creds, Region: mio.Region()})
	if err != nil {
		return c, fmt.Errorf("census: s3: %w", err)
	}
	buckets, err := s3.ListBuckets(ctx)
	if err != nil {
		return c, fmt.Errorf("census: buckets: %w", err)
	}
	for _, b := range buckets {
		c.Buckets[b.Name]++
	}
	adm, err := madmin.NewWithOptions(mio.Endpoint(), &madmin.Options{Creds: creds})
	if err != nil {
		return c, fmt.Errorf("census: admin: %w", err)
	}
	users, err := adm.ListUsers(ctx)
	if err != nil {
		return c, fmt.Errorf("census: users: %w", err)
	}
	for _, u := range users {
		c.Users[u.PolicyName]++
	}
	return c, nil
}

// Totals are how many clients, buckets and users there are in all.
func (c Count) Totals() (clients, buckets, users int) {
	return sum(c.Clients), sum(c.Buckets), sum(c.Users)
}

func sum(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}
