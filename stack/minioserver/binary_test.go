package minioserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEnsureBinaryAnswersThePinnedBuild(t *testing.T) {
	if os.Getenv(EnvBinary) != "" {
		t.Skipf("%s is set: the pinned build is not used", EnvBinary)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := EnsureBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	root, err := RepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if bin != filepath.Join(root, ".bin", "minio") {
		t.Errorf("binary %q, want <repo>/.bin/minio", bin)
	}
	pin, err := pinnedVersion(filepath.Join(root, "tools", "minio", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if got := builtVersion(bin); got != pin {
		t.Errorf("built from MinIO %q, tools/minio pins %q", got, pin)
	}
	if builtVersion(filepath.Join(t.TempDir(), "absent")) != "" {
		t.Error("a missing binary must read as no version, to be rebuilt")
	}
}

func TestLockFileWaitsForTheHolderOrTheContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "minio.lock")
	unlock, err := lockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: err = %v, want the context's deadline", err)
	}
	unlock()
	unlock2, err := lockFile(context.Background(), path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}
