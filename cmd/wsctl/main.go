// Command wsctl is the operators' and auditors' tool: a CLI over the
// workspace API, and over NATS where the API has no place (the audit
// trail's live tail and export, publishing a command directly).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes of the contract.
const (
	exitOK     = 0
	exitFailed = 1 // the operation failed
	exitUsage  = 2 // the command line was wrong
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	os.Exit(code)
}

// streams are the process's standard files, replaceable in tests.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// run executes one command line and returns the process's exit code.
func run(ctx context.Context, args []string, s streams) int {
	root := newRoot(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(s.err, "wsctl:", err)
	if isUsage(err) {
		fmt.Fprintln(s.err, "Run 'wsctl --help' or 'wsctl COMMAND --help' for usage.")
		return exitUsage
	}
	return exitFailed
}

// usageError is a command line that cannot be run as given.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// isUsage tells a bad command line: ours, and cobra's own, which it
// reports as plain errors (unknown commands and flags, bad flag values).
func isUsage(err error) bool {
	var ue *usageError
	if errors.As(err, &ue) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
