// Package ui serves the operator page: its assets, embedded in the binary,
// the settings it signs in with, and the live feed of workspace changes
// it shows, fed by the read model's KV watch.
package ui
