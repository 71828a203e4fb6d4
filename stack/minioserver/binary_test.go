package minioserver

import (
	"context"
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
