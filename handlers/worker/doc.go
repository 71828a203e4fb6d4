// Package worker consumes workspace commands from JetStream and drives
// the provisioning sagas: one workspace's commands one at a time, in
// stream order; different workspaces in parallel.
package worker
