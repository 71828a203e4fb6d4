package keycloakserver

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/eo-workspaces/provisioner/stack/filelock"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// DefaultVersion is the Keycloak release the project pins: the emulator
// follows the same minor release (kcemu.DefaultVersion).
const DefaultVersion = "26.5.6"

// EnvDist names the environment variable that points at an unpacked
// Keycloak distribution to use instead of fetching the pinned one.
const EnvDist = "KEYCLOAK_DIST"

// distArtifact is the Maven coordinate of Keycloak's server distribution.
func distArtifact(version string) string {
	return "org.keycloak:keycloak-quarkus-dist:" + version + ":tar.gz"
}

// EnsureDist returns the directory of an unpacked Keycloak distribution:
// $KEYCLOAK_DIST if set, else <repo root>/.bin/keycloak-<version>, fetched
// with Maven (mvn dependency:copy, from the local repository ~/.m2 when it
// is there, else Maven Central) and unpacked the first time. The fetch runs
// under a flock so that parallel test packages do it once.
func EnsureDist(ctx context.Context, version string) (string, error) {
	if d := os.Getenv(EnvDist); d != "" {
		if !isDist(d) {
			return "", fmt.Errorf("%s=%q: no bin/kc.sh there", EnvDist, d)
		}
		return d, nil
	}
	root, err := minioserver.RepoRoot(".") // from the working directory
	if err != nil {
		return "", err
	}
	return EnsureDistIn(ctx, filepath.Join(root, ".bin"), version)
}

func isDist(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "bin", "kc.sh"))
	return err == nil
}

// EnsureDistIn is EnsureDist with binDir in place of <repo root>/.bin.
func EnsureDistIn(ctx context.Context, binDir, version string) (string, error) {
	dist := filepath.Join(binDir, "keycloak-"+version)
	if isDist(dist) {
		return dist, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", binDir, err)
	}
	unlock, err := filelock.Lock(ctx, dist+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isDist(dist) { // unpacked by someone else while we waited
		return dist, nil
	}
	tmp, err := os.MkdirTemp(binDir, "keycloak-fetch-")
	if err != nil {
		return "", fmt.Errorf("keycloak fetch dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	archive, err := fetch(ctx, version, tmp)
	if err != nil {
		return "", err
	}
	if err := untar(archive, tmp); err != nil {
		return "", fmt.Errorf("unpack %s: %w", archive, err)
	}
	if err := os.Rename(filepath.Join(tmp, "keycloak-"+version), dist); err != nil {
		return "", fmt.Errorf("install %s: %w", dist, err)
	}
	return dist, nil
}

// fetch copies the distribution's archive into dir with Maven.
func fetch(ctx context.Context, version, dir string) (string, error) {
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return "", errors.New("keycloakserver: mvn (Apache Maven) is not on PATH; it fetches Keycloak from Maven Central: install Maven (e.g. `apt-get install maven`), or set " + EnvDist + " to an unpacked keycloak-quarkus-dist")
	}
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "dependency:copy",
		"-Dartifact="+distArtifact(version), "-DoutputDirectory="+dir)
	cmd.Dir = dir // no pom.xml here: the goal needs none
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("fetch %s with Maven: %w\n%s", distArtifact(version), err, out)
	}
	return filepath.Join(dir, "keycloak-quarkus-dist-"+version+".tar.gz"), nil
}

// untar unpacks a .tar.gz into dir, refusing entries that would land outside it.
func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := unpackEntry(tr, h, dir); err != nil {
			return err
		}
	}
}

func unpackEntry(r io.Reader, h *tar.Header, dir string) error {
	target := filepath.Join(dir, h.Name)
	if !strings.HasPrefix(target, filepath.Clean(dir)+string(os.PathSeparator)) {
		return fmt.Errorf("entry %q leaves the target directory", h.Name)
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(target, 0o755)
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, h.FileInfo().Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	case tar.TypeSymlink:
		return os.Symlink(h.Linkname, target)
	default:
		return nil // nothing else is in Keycloak's archive
	}
}
