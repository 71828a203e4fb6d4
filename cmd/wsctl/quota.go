package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func newQuota(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "quota",
		Short:   "A workspace's storage quota",
		Example: "  wsctl quota set ws-demo 2048\n  wsctl quota set ws-demo none",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "set NAME MB|none",
		Short: "Set the bucket's hard quota in MiB, or remove it with none (platform admins)",
		Example: `  wsctl quota set ws-demo 1024
  wsctl quota set ws-demo none`,
		Args: exactArgs(2, "the workspace name and a size in MiB (or none)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var quota *int64
			if args[1] != "none" {
				n, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil || n < 1 {
					return usagef("quota %q: a whole number of MiB, at least 1, or none", args[1])
				}
				quota = &n
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var a accepted
			if err := c.call(cmd.Context(), "PATCH", wsPath(args[0]), map[string]any{"quota_mb": quota}, &a); err != nil {
				return err
			}
			a.Name = or(a.Name, args[0])
			if o.wantJSON() {
				return printJSON(o.io.out, a)
			}
			_, err = fmt.Fprintf(o.io.out, "quota of %s set to %s MiB (accepted)\n", a.Name, args[1])
			return err
		},
	})
	return group(cmd)
}
