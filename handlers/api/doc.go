// Package api is the HTTP command API: it validates requests, turns them
// into workspace commands on JetStream and answers 202 at once; reads are
// answered from the projection.
package api
