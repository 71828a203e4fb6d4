// Package natsaccounts proves the deployment files under deploy/: the NATS
// account model and cluster configuration against a real nats-server, and
// the compose and Kubernetes files against the provisioner's own flags.
package natsaccounts
