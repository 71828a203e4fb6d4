// Package census counts what the providers hold, for tests that say a
// workspace has exactly one client, one bucket and one MinIO user per
// member with its policy, and nothing made twice.
package census
