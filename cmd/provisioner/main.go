// Command provisioner runs the workspace provisioning system: the HTTP
// command API, the saga worker and the projection, together by default or
// each alone so that each scales on its own.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "provisioner:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var cfg config
	root := &cobra.Command{
		Use:   "provisioner",
		Short: "Event-driven workspace provisioning: Keycloak clients and MinIO buckets from commands on NATS JetStream",
		Long: "Runs the HTTP command API, the saga worker and the projection (all three by default; pick with --roles).\n" +
			"Every flag can also be set by an environment variable: --http-addr is " + envPrefix + "HTTP_ADDR.",
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return run(ctx, cfg)
		},
	}
	cfg.bind(root.Flags())
	root.AddCommand(newRebuildCmd())
	return root
}

func newRebuildCmd() *cobra.Command {
	var cfg config
	cmd := &cobra.Command{
		Use:   "rebuild-projection",
		Short: "Replay every event into the read model, replacing it entry by entry while the API keeps reading (stop every projection role first)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			return rebuild(cmd.Context(), cfg)
		},
	}
	cfg.bind(cmd.Flags())
	return cmd
}
