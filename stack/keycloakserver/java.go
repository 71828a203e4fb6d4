package keycloakserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// minJava is the oldest Java release Keycloak 26 runs on.
const minJava = 17

var installJava = fmt.Sprintf("install a JDK %d or later (e.g. `apt-get install openjdk-17-jre-headless`), or set JAVA_HOME to one", minJava)

// FindJava returns the java that kc.sh will run ($JAVA_HOME/bin/java, else
// java on PATH), checked to be recent enough for Keycloak.
func FindJava() (string, error) {
	java := "java"
	if home := os.Getenv("JAVA_HOME"); home != "" {
		java = filepath.Join(home, "bin", "java")
	}
	path, err := exec.LookPath(java)
	if err != nil {
		return "", errors.New("keycloakserver: no java to run Keycloak with: " + installJava)
	}
	out, err := exec.Command(path, "-version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("keycloakserver: %s -version: %w\n%s", path, err, out)
	}
	major, err := javaMajor(string(out))
	if err != nil {
		return "", fmt.Errorf("keycloakserver: %s: %w", path, err)
	}
	if major < minJava {
		return "", fmt.Errorf("keycloakserver: %s is Java %d; Keycloak needs %d or later: %s", path, major, minJava, installJava)
	}
	return path, nil
}

var javaVersion = regexp.MustCompile(`version "(\d+)(?:\.(\d+))?`)

// javaMajor reads the release from `java -version`: "17.0.15" is 17, the
// old scheme's "1.8.0_392" is 8.
func javaMajor(versionOutput string) (int, error) {
	m := javaVersion.FindStringSubmatch(versionOutput)
	if m == nil {
		return 0, fmt.Errorf("no version in %q", versionOutput)
	}
	major, _ := strconv.Atoi(m[1])
	if major == 1 && m[2] != "" {
		major, _ = strconv.Atoi(m[2])
	}
	return major, nil
}
