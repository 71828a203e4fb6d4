// Package names reserves workspace names in a JetStream KV bucket
// (events.NamesBucket): the API reserves a name for a create command,
// claims one whose workspace was deleted, and gives one back when the
// command cannot be published; the delete saga releases it
// (sagas.Names). Every write is a compare-and-set, so of two requests
// for one name exactly one wins.
package names
