package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newCredentials(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Temporary storage credentials, and rotation of your key pair",
		Example: `  wsctl credentials sts ws-demo --prefix results/ --duration 15m --read-only
  wsctl credentials rotate ws-demo --grace 5m`,
	}
	cmd.AddCommand(newSTS(o), newRotate(o))
	return group(cmd)
}

func newSTS(o *options) *cobra.Command {
	var prefix string
	var readOnly bool
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "sts NAME",
		Short: "Temporary credentials on the workspace's bucket (or a prefix), from the object store's STS",
		Long: `Prints the credentials: they are what you asked for. -o json gives the API's answer;
the table also suits 'eval' when piped through awk.`,
		Example: `  wsctl credentials sts ws-demo --duration 1h
  wsctl credentials sts ws-demo --prefix results/ --read-only -o json`,
		Args: exactArgs(1, "the workspace name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"prefix": prefix, "read_only": readOnly}
			if cmd.Flags().Changed("duration") {
				if duration%time.Second != 0 {
					return usagef("--duration %s: whole seconds only", duration)
				}
				body["duration_seconds"] = int(duration.Seconds())
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var out struct {
				Credentials map[string]string `json:"credentials"`
			}
			if err := c.call(cmd.Context(), "POST", wsPath(args[0], "credentials", "sts"), body, &out); err != nil {
				return err
			}
			if o.wantJSON() {
				return printJSON(o.io.out, out)
			}
			t := newTable(o.io.out, "KEY", "VALUE")
			for _, k := range sortedKeys(out.Credentials) {
				t.row(k, out.Credentials[k])
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&prefix, "prefix", "", "limit the credentials to this prefix of the bucket")
	f.BoolVar(&readOnly, "read-only", false, "read-only credentials (always so for a ws_viewer)")
	f.DurationVar(&duration, "duration", time.Hour, "how long they last: 15m to 8760h")
	return cmd
}

func newRotate(o *options) *cobra.Command {
	var grace time.Duration
	var all bool
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Replace your storage key pair (every member's with --all); the old one works for --grace",
		Example: `  wsctl credentials rotate ws-demo
  wsctl credentials rotate ws-demo --all --grace 10m   # ws_admin only`,
		Args: exactArgs(1, "the workspace name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace < 0 || grace%time.Second != 0 {
				return usagef("--grace %s: a whole, non-negative number of seconds", grace)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var a accepted
			body := map[string]any{"grace_seconds": int(grace.Seconds()), "all": all}
			if err := c.call(cmd.Context(), "POST", wsPath(args[0], "credentials", "rotate"), body, &a); err != nil {
				return err
			}
			a.Name = or(a.Name, args[0])
			if o.wantJSON() {
				return printJSON(o.io.out, a)
			}
			_, err = fmt.Fprintf(o.io.out, "rotation of %s accepted (command %s); wsctl get %s shows the new pair\n", a.Name, a.CommandID, a.Name)
			return err
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 0, "how long the old pair keeps working")
	cmd.Flags().BoolVar(&all, "all", false, "every member's pair (ws_admin only)")
	return cmd
}
