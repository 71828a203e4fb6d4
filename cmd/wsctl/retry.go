package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newRetry(o *options) *cobra.Command {
	var all, dryRun, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "retry NAME | --all-failed [--dry-run]",
		Short: "Resume provisioning (or deletion) that failed, at the step that failed",
		Long: `Fix the cause first (a provider outage, a user that does not exist, a bucket someone
else owns); the saga then resumes at the failed step, never repeating a finished one.`,
		Example: `  wsctl retry ws-demo --wait
  wsctl retry --all-failed --dry-run   # list what would be retried
  wsctl retry --all-failed`,
		Args: rangeArgs(0, 1, "a workspace name, or --all-failed"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return usagef("retry takes a workspace name or --all-failed, not both nor neither")
			}
			if dryRun && !all {
				return usagef("--dry-run goes with --all-failed")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			if all {
				return o.retryAll(cmd.Context(), cmd, c, dryRun)
			}
			var a accepted
			if err := c.call(cmd.Context(), "POST", wsPath(args[0], "retry"), nil, &a); err != nil {
				return err
			}
			a.Name = or(a.Name, args[0])
			if wait {
				return o.follow(cmd.Context(), c, a, sagaRetry, timeout)
			}
			return o.printAccepted(a)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&all, "all-failed", false, "retry every failed workspace you may see")
	f.BoolVar(&dryRun, "dry-run", false, "with --all-failed: only list them")
	f.BoolVar(&wait, "wait", false, "follow the resumed saga until it ends (exit 1 if it fails again)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	return cmd
}

// retryResult is one line of retry --all-failed.
type retryResult struct {
	Name       string `json:"name"`
	FailedStep string `json:"failed_step"`
	LastError  string `json:"last_error"`
	Retried    bool   `json:"retried"`
	CommandID  string `json:"command_id,omitempty"`
	Error      string `json:"error,omitempty"`
}

// retryAll retries every failed workspace, going on past one that cannot
// be retried; any such failure makes the exit code 1.
func (o *options) retryAll(ctx context.Context, cmd *cobra.Command, c *client, dryRun bool) error {
	failed, err := listAll(cmd, c, "failed", "", 0)
	if err != nil {
		return err
	}
	results := make([]retryResult, 0, len(failed))
	refused := 0
	for _, ws := range failed {
		r := retryResult{Name: ws.Name, FailedStep: ws.FailedStep, LastError: ws.LastError}
		if !dryRun {
			var a accepted
			if err := c.call(ctx, "POST", wsPath(ws.Name, "retry"), nil, &a); err != nil {
				r.Error = err.Error()
				refused++
			} else {
				r.Retried, r.CommandID = true, a.CommandID
			}
		}
		results = append(results, r)
	}
	if err := o.printRetries(results, dryRun); err != nil {
		return err
	}
	if refused > 0 {
		return fmt.Errorf("%d of %d failed workspaces could not be retried (see above)", refused, len(failed))
	}
	return nil
}

func (o *options) printRetries(results []retryResult, dryRun bool) error {
	if o.wantJSON() {
		return printJSON(o.io.out, results)
	}
	if len(results) == 0 {
		_, err := fmt.Fprintln(o.io.out, "no failed workspace")
		return err
	}
	t := newTable(o.io.out, "NAME", "FAILED STEP", "LAST ERROR", "RETRY")
	for _, r := range results {
		outcome := "would retry"
		switch {
		case r.Error != "":
			outcome = "refused: " + r.Error
		case !dryRun:
			outcome = "retrying"
		}
		t.row(r.Name, dash(r.FailedStep), dash(r.LastError), outcome)
	}
	return t.flush()
}
