// Package sagas runs workspace provisioning as sagas: ordered, idempotent
// steps against Keycloak and MinIO whose progress survives crashes.
//
// It is the core of the worker, in three parts:
//   - the engine (engine*.go): one Run for every saga kind, with the
//     lease, the saved progress, the events and the handling of failures;
//   - the workspace's sagas as declarative data (provision.go: create and
//     delete; members.go: membership changes; rotate.go, migrate.go,
//     quota.go: the other side sagas) and the CommandHandler
//     (commands.go) that decides which saga a command starts;
//   - the ports it acts through (ports.go), in its own terms; adapters in
//     the packages beside it implement them (keycloak, objectstore,
//     secrets, progress, names, shares), and NewApplication (app.go) plugs
//     them in.
package sagas
