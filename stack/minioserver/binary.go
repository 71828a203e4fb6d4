package minioserver

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/eo-workspaces/provisioner/stack/filelock"
)

// minioModule is the module whose main package is the MinIO server.
const minioModule = "github.com/minio/minio"

// EnvBinary names the environment variable that points at a MinIO binary to
// use instead of the repository's pinned build.
const EnvBinary = "MINIO_BINARY"

// RepoRoot walks up from dir to the first directory holding a go.mod.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("absolute path of %q: %w", dir, err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod in %q or any parent", dir)
		}
	}
}

// DefaultBinary is where the repository keeps its MinIO build:
// $MINIO_BINARY if set, else <repo root>/.bin/minio.
func DefaultBinary() (string, error) {
	if b := os.Getenv(EnvBinary); b != "" {
		return b, nil
	}
	root, err := RepoRoot(".") // from the working directory
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".bin", "minio"), nil
}

// EnsureBinary returns the path of a MinIO server binary, building
// <repo root>/.bin/minio from tools/minio when it is missing or was built
// from another pinned version. The build runs under an exclusive flock on
// .bin/minio.lock so that test packages running in parallel build it once;
// the others wait for it. $MINIO_BINARY, when set, is used as is.
func EnsureBinary(ctx context.Context) (string, error) {
	if b := os.Getenv(EnvBinary); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("%s=%q: %w", EnvBinary, b, err)
		}
		return b, nil
	}
	root, err := RepoRoot(".") // from the working directory
	if err != nil {
		return "", err
	}
	return ensureBuilt(ctx, root)
}

func ensureBuilt(ctx context.Context, root string) (string, error) {
	toolDir := filepath.Join(root, "tools", "minio")
	want, err := pinnedVersion(filepath.Join(toolDir, "go.mod"))
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(root, ".bin")
	bin := filepath.Join(binDir, "minio")
	if builtVersion(bin) == want {
		return bin, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", binDir, err)
	}
	unlock, err := filelock.Lock(ctx, filepath.Join(binDir, "minio.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	// Someone else may have built it while we waited for the lock.
	if builtVersion(bin) == want {
		return bin, nil
	}
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, minioModule)
	cmd.Dir = toolDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build MinIO %s in %s: %w\n%s", want, toolDir, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("install %s: %w", bin, err)
	}
	return bin, nil
}

// pinnedVersion reads the version of github.com/minio/minio that tools/minio/go.mod requires.
func pinnedVersion(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", fmt.Errorf("read MinIO pin: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == minioModule {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", gomod, err)
	}
	return "", fmt.Errorf("%s does not require %s", gomod, minioModule)
}

// builtVersion is the MinIO module version recorded in a binary's build
// info, or "" when the binary is missing or unreadable.
func builtVersion(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return ""
	}
	if info.Main.Path == minioModule {
		return info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path == minioModule {
			return d.Version
		}
	}
	return ""
}
