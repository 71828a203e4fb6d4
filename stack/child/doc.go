// Package child runs a server as a child process the way the dev stack and
// the tests need it: started from a goroutine locked to its OS thread (so
// Pdeathsig fires only when we die), its output kept in memory unless a
// writer is given, and stopped with SIGTERM, then SIGKILL after a grace.
package child
