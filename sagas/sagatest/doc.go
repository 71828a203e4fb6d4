// Package sagatest is an in-memory implementation of the saga ports
// (sagas.Identity and sagas.ObjectStore) with fault injection, for tests
// of the saga machinery; the real adapters are tested against real servers.
package sagatest
