package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newMembers(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List, add and remove a workspace's members",
		Example: `  wsctl members list ws-demo
  wsctl members add ws-demo example-user-2 --role ws_viewer --wait
  wsctl members add ws-demo --client my-app --role ws_access
  wsctl members remove ws-demo example-user-2 --wait`,
	}
	cmd.AddCommand(newMembersList(o), newMembersAdd(o), newMembersRemove(o))
	return group(cmd)
}

func newMembersList(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list NAME",
		Short:   "List a workspace's members with their roles and kinds",
		Example: "  wsctl members list ws-demo -o json",
		Args:    exactArgs(1, "the workspace name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var ws workspace
			if err := c.call(cmd.Context(), "GET", wsPath(args[0]), nil, &ws); err != nil {
				return err
			}
			if o.wantJSON() {
				return printJSON(o.io.out, ws.Members)
			}
			t := newTable(o.io.out, "USERNAME", "ROLE", "KIND", "CLIENT")
			for _, m := range ws.Members {
				t.row(m.Username, m.Role, dash(m.Kind), dash(m.ClientID))
			}
			return t.flush()
		},
	}
}

var roles = []string{"ws_admin", "ws_access", "ws_viewer"}

func newMembersAdd(o *options) *cobra.Command {
	var role, clientID string
	var wait bool
	cmd := &cobra.Command{
		Use:   "add NAME [USERNAME] [--client CLIENT_ID] [--role ROLE]",
		Short: "Make a user (or a client application) a member, or change their role",
		Long: `Grants ws_admin, ws_access (the default) or ws_viewer; posting an existing member
with another role changes their role. --client makes a client application a member
through its service account.`,
		Example: `  wsctl members add ws-demo example-user-2 --role ws_admin
  wsctl members add ws-demo --client my-app --wait`,
		Args: rangeArgs(1, 2, "the workspace name and a username (or --client)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := memberBody(args, clientID, role)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var a accepted
			if err := c.call(cmd.Context(), "POST", wsPath(args[0], "members"), body, &a); err != nil {
				return err
			}
			if wait {
				return o.waitMember(cmd.Context(), c, a, args[0], or(a.Username, clientID), role)
			}
			return o.printAccepted(a)
		},
	}
	cmd.Flags().StringVar(&role, "role", "ws_access", "ws_admin, ws_access or ws_viewer")
	cmd.Flags().StringVar(&clientID, "client", "", "a client application's clientId, instead of a username")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the membership is in place (exit 1 if it cannot be made)")
	return cmd
}

func memberBody(args []string, clientID, role string) (map[string]string, error) {
	if !contains(roles, role) {
		return nil, usagef("--role %q: want one of %v", role, roles)
	}
	switch {
	case len(args) == 2 && clientID == "":
		return map[string]string{"username": args[1], "role": role}, nil
	case len(args) == 1 && clientID != "":
		return map[string]string{"client_id": clientID, "role": role}, nil
	}
	return nil, usagef("members add takes NAME and either a USERNAME or --client CLIENT_ID")
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func newMembersRemove(o *options) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:     "remove NAME USERNAME",
		Short:   "Remove a member: their role, their storage keys and their access, at once",
		Example: "  wsctl members remove ws-demo example-user-2 --wait",
		Args:    exactArgs(2, "the workspace name and the member's username"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var a accepted
			if err := c.call(cmd.Context(), "DELETE", wsPath(args[0], "members", args[1]), nil, &a); err != nil {
				return err
			}
			if wait {
				return o.waitMember(cmd.Context(), c, a, args[0], args[1], "")
			}
			return o.printAccepted(a)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the member is gone")
	return cmd
}

// memberWait bounds how long a membership change may take to show.
const memberWait = 2 * time.Minute

// waitMember follows the events of the accepted command until the member
// is added or removed, or the change fails for good.
func (o *options) waitMember(ctx context.Context, c *client, a accepted, name, username, role string) error {
	ctx, cancel := context.WithTimeout(ctx, memberWait)
	defer cancel()
	feed := &historyFeed{c: c, name: name, seen: map[string]bool{}}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		items, err := feed.next(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		for _, it := range items {
			ce := it.envelope()
			if ce.CorrelationID != a.CommandID {
				continue
			}
			var d eventData
			_ = json.Unmarshal(ce.Data, &d)
			switch {
			case ce.Type == "workspace.member.added" || ce.Type == "workspace.member.removed":
				return o.printMembership(name, username, role)
			case ce.Type == "workspace.step.failed" && !d.Retryable:
				return fmt.Errorf("membership change on %s failed at step %s: %s", name, d.Step, d.Error)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s on %s: not in place after %s; see wsctl events %s", username, name, memberWait, name)
		case <-tick.C:
		}
	}
}

func (o *options) printMembership(name, username, role string) error {
	if o.wantJSON() {
		return printJSON(o.io.out, map[string]string{"name": name, "username": username, "role": role})
	}
	if role == "" {
		_, err := fmt.Fprintf(o.io.out, "%s is no longer a member of %s\n", username, name)
		return err
	}
	_, err := fmt.Fprintf(o.io.out, "%s is %s of %s\n", username, role, name)
	return err
}
