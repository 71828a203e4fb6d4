// Package filelock takes exclusive advisory locks on files, so that
// processes sharing a directory (test packages run in parallel, two dev
// stacks) do a one-time job, such as building or unpacking a tool, once.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Lock takes an exclusive flock on path (created if missing), blocking until
// it is free or ctx ends. The lock dies with the process, so a crash never
// wedges it.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	locked := make(chan error, 1)
	go func() { locked <- flockRetry(f) }()
	select {
	case err := <-locked:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		// Closing the file does not interrupt a blocked flock; the
		// goroutine ends once the holder releases it, then closes it.
		go func() {
			<-locked
			f.Close()
		}()
		return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
	}
}

func flockRetry(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
