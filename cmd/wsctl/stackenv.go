package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// stackEnvPath is where the dev stack describes itself, below a checkout.
var stackEnvPath = filepath.Join(".dev", "stack.env")

// findStackEnv reads .dev/stack.env in the current directory or the
// nearest one above it, so wsctl finds the dev stack from anywhere in
// the checkout.
func findStackEnv() (map[string]string, string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, "", fmt.Errorf("current directory: %w", err)
	}
	for {
		path := filepath.Join(dir, stackEnvPath)
		raw, err := os.ReadFile(path)
		if err == nil {
			env, err := parseDotenv(raw)
			if err != nil {
				return nil, path, fmt.Errorf("%s: %w", path, err)
			}
			return env, path, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, path, fmt.Errorf("read %s: %w", path, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, "", fmt.Errorf("no %s here or in any parent directory", stackEnvPath)
		}
		dir = parent
	}
}

// parseDotenv reads KEY=VALUE lines, values optionally double-quoted as
// the dev stack writes them; blank lines and # comments are skipped.
func parseDotenv(raw []byte) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("line %d: no '='", n)
		}
		if strings.HasPrefix(v, `"`) {
			uq, err := strconv.Unquote(v)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			v = uq
		} else {
			v = strings.Trim(v, "'")
		}
		env[strings.TrimSpace(k)] = v
	}
	return env, sc.Err()
}
