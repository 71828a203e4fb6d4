package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func newShares(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shares",
		Short: "Public links to one object of a workspace: create, list, revoke",
		Example: `  wsctl shares create ws-demo results/map.tif --expires-in 2h --max-uses 5
  wsctl shares list ws-demo
  wsctl shares revoke ws-demo 0b4f...`,
	}
	cmd.AddCommand(newShareCreate(o), newShareList(o), newShareRevoke(o))
	return group(cmd)
}

// share is a share link as the API shows it.
type share struct {
	ID        string    `json:"id"`
	URL       string    `json:"url,omitempty"`
	Path      string    `json:"path"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   *int      `json:"max_uses"`
	Uses      int       `json:"uses"`
	CreatedBy string    `json:"created_by,omitempty"`
	State     string    `json:"state,omitempty"` // active, revoked, expired, used_up
}

func newShareCreate(o *options) *cobra.Command {
	var expires time.Duration
	var maxUses int
	cmd := &cobra.Command{
		Use:   "create NAME PATH",
		Short: "Create a public link to an object (ws_admin, ws_access)",
		Example: `  wsctl shares create ws-demo results/map.tif
  wsctl shares create ws-demo report.pdf --expires-in 168h --max-uses 1 -o json`,
		Args: exactArgs(2, "the workspace name and the object's path"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if expires < time.Second || expires%time.Second != 0 {
				return usagef("--expires-in %s: whole seconds, at least 1s (at most 168h)", expires)
			}
			body := map[string]any{"path": args[1], "expires_in": int(expires.Seconds())}
			if cmd.Flags().Changed("max-uses") {
				body["max_uses"] = maxUses
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var s share
			if err := c.call(cmd.Context(), "POST", wsPath(args[0], "shares"), body, &s); err != nil {
				return err
			}
			return o.printShares([]share{s}, true)
		},
	}
	cmd.Flags().DurationVar(&expires, "expires-in", 24*time.Hour, "how long the link works")
	cmd.Flags().IntVar(&maxUses, "max-uses", 0, "how many downloads it allows (default: unlimited)")
	return cmd
}

func newShareList(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list NAME",
		Short:   "List a workspace's share links with their uses (never their secret part)",
		Example: "  wsctl shares list ws-demo -o json",
		Args:    exactArgs(1, "the workspace name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var p page[share]
			if err := c.call(cmd.Context(), "GET", wsPath(args[0], "shares"), nil, &p); err != nil {
				return err
			}
			if p.Items == nil {
				p.Items = []share{}
			}
			return o.printShares(p.Items, false)
		},
	}
}

func newShareRevoke(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "revoke NAME ID",
		Short:   "Revoke a share link: dead within a second (its creator or a ws_admin)",
		Example: "  wsctl shares revoke ws-demo 0b4f6c1e",
		Args:    exactArgs(2, "the workspace name and the share's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", wsPath(args[0], "shares", args[1]), nil, nil); err != nil {
				return err
			}
			if o.wantJSON() {
				return printJSON(o.io.out, map[string]string{"id": args[1], "status": "revoked"})
			}
			_, err = fmt.Fprintf(o.io.out, "share %s of %s revoked\n", args[1], args[0])
			return err
		},
	}
}

func (o *options) printShares(items []share, withURL bool) error {
	if o.wantJSON() {
		if withURL && len(items) == 1 {
			return printJSON(o.io.out, items[0])
		}
		return printJSON(o.io.out, items)
	}
	header := []string{"ID", "PATH", "STATE", "EXPIRES", "USES", "BY"}
	if withURL {
		header = append(header, "URL")
	}
	t := newTable(o.io.out, header...)
	for _, s := range items {
		uses := strconv.Itoa(s.Uses)
		if s.MaxUses != nil {
			uses += "/" + strconv.Itoa(*s.MaxUses)
		}
		row := []string{s.ID, s.Path, dash(s.State), s.ExpiresAt.Local().Format(time.RFC3339), uses, dash(s.CreatedBy)}
		if withURL {
			row = append(row, s.URL)
		}
		t.row(row...)
	}
	return t.flush()
}
