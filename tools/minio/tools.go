//go:build tools

// Package minio pins the MinIO server release the tests and the dev stack run.
package minio

import _ "github.com/minio/minio"
