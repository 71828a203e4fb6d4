package main

import (
	"github.com/spf13/cobra"
)

func newReconcile(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "reconcile NAME",
		Short: "Compare a ready or degraded workspace with Keycloak and MinIO and repair what is ours (platform admins)",
		Long: `The worker's drift sweep for one workspace, now: a client, role, mapping, bucket, policy,
member key or quota of the workspace removed or changed by hand is repaired. A bucket or client
of its name made by someone else is never adopted: the workspace turns degraded, with the reason
(wsctl get shows it), its members' storage keys disabled; remove that resource and reconcile
again to bring it back to ready.`,
		Example: `  wsctl reconcile ws-demo
  wsctl get ws-demo   # status and last_error once the worker is done`,
		Args: exactArgs(1, "the workspace name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var a accepted
			if err := c.call(cmd.Context(), "POST", wsPath(args[0], "reconcile"), nil, &a); err != nil {
				return err
			}
			a.Name = or(a.Name, args[0])
			return o.printAccepted(a)
		},
	}
}
