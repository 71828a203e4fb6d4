// Package objectstore is the saga adapter for MinIO: workspace buckets
// through minio-go and their IAM policies and users through madmin-go.
package objectstore
