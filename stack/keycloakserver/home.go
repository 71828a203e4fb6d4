package keycloakserver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// prepareHome makes dir a Keycloak home of its own on top of the shared,
// never modified distribution dist.
//
// Keycloak's start-dev re-augments the server at every start (it prints
// "Updating the configuration ..." each time, even with unchanged build
// options) and writes the result into lib/quarkus beside quarkus-run.jar;
// its dev-file database and --import-realm's directory live under the home
// (kc.home.dir, derived by kc.sh from its own path). A home per instance
// keeps both apart, so instances never rewrite each other's files: it holds
// its own copies of bin/kc.sh, lib/quarkus-run.jar and lib/quarkus (3 MB),
// links to the distribution's read-only parts (lib/lib, lib/app, conf,
// providers, themes), and data/, which survives restarts. Everything but
// data/ is made again at each start, so a new pinned version takes over.
func prepareHome(dist, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "data", "import"), 0o755); err != nil {
		return fmt.Errorf("keycloak home %s: %w", dir, err)
	}
	for _, sub := range []string{"bin", "lib"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return fmt.Errorf("keycloak home: %w", err)
		}
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("keycloak home: %w", err)
		}
	}
	for _, rel := range []string{"bin/kc.sh", "lib/quarkus-run.jar"} {
		if err := copyFile(filepath.Join(dist, rel), filepath.Join(dir, rel)); err != nil {
			return err
		}
	}
	if err := copyDir(filepath.Join(dist, "lib", "quarkus"), filepath.Join(dir, "lib", "quarkus")); err != nil {
		return err
	}
	for _, rel := range []string{"lib/lib", "lib/app", "conf", "providers", "themes"} {
		if err := relink(filepath.Join(dist, rel), filepath.Join(dir, rel)); err != nil {
			return err
		}
	}
	return nil
}

// relink points link at target, replacing an older link.
func relink(target, link string) error {
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keycloak home: %w", err)
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("keycloak home: %w", err)
	}
	return nil
}

func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("keycloak home: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("keycloak home: %w", err)
	}
	for _, e := range entries {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if e.IsDir() {
			err = copyDir(from, to)
		} else {
			err = copyFile(from, to)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("keycloak home: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("keycloak home: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("keycloak home: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("keycloak home: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("keycloak home: write %s: %w", dst, err)
	}
	return nil
}
