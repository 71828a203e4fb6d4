// Package scaleout tests the provisioner scaled out on a JetStream
// cluster: three nats-server nodes, three worker processes and two API
// processes of the real binary, real MinIO and the Keycloak emulator,
// with a worker and a node SIGKILLed in the middle of the run.
package scaleout
