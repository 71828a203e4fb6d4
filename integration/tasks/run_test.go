package tasks

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
)

// checkoutRoot is the scratch checkout TestMain makes; the tests run in it
// one after the other, so the binaries `task build` makes there are built once.
var checkoutRoot string

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	root, cleanup, err := stacktest.MakeCheckout(ctx, "tasks-checkout-")
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tasks:", err)
		os.Exit(1)
	}
	checkoutRoot = root
	code := m.Run()
	cleanup()
	os.Exit(code)
}
