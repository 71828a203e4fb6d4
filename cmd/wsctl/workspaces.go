package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newCreate(o *options) *cobra.Command {
	var owner, idemKey string
	var quota int64
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "create PREFERRED_NAME --owner USER",
		Short: "Create a workspace (ws-<slug of the name>), optionally waiting until it is ready",
		Example: `  wsctl create demo --owner example-user-1 --wait
  wsctl create "Flood mapping" --owner example-user-2 --quota-mb 1024 -o json`,
		Args: exactArgs(1, "the preferred name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if owner == "" {
				return usagef("create needs --owner USER: the workspace's first ws_admin")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			body := map[string]any{"preferred_name": args[0], "default_owner": owner}
			if cmd.Flags().Changed("quota-mb") {
				body["quota_mb"] = quota
			}
			var a accepted
			if err := c.callIdem(cmd.Context(), "POST", "/workspaces", idemKey, body, &a); err != nil {
				return err
			}
			if !wait {
				return o.printAccepted(a)
			}
			return o.follow(cmd.Context(), c, a, sagaCreate, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&owner, "owner", "", "default owner: the user made the workspace's ws_admin (required)")
	f.Int64Var(&quota, "quota-mb", 0, "hard quota of the bucket in MiB")
	f.StringVar(&idemKey, "idempotency-key", "", "Idempotency-Key header: a repeat answers the same")
	f.BoolVar(&wait, "wait", false, "follow the saga step by step until ready (exit 0) or failed (exit 1)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	return cmd
}

func (o *options) printAccepted(a accepted) error {
	if o.wantJSON() {
		return printJSON(o.io.out, a)
	}
	t := newTable(o.io.out, "NAME", "STATUS", "COMMAND")
	t.row(a.Name, dash(a.Status), a.CommandID)
	return t.flush()
}

func newGet(o *options) *cobra.Command {
	var showSecrets bool
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a workspace: status, owner, members, failure, and your storage credentials (hidden unless --show-secrets)",
		Example: `  wsctl get ws-demo
  wsctl get ws-demo -o json --show-secrets | jq -r .storage.credentials.AWS_SECRET_ACCESS_KEY`,
		Args: exactArgs(1, "the workspace name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.call(cmd.Context(), "GET", wsPath(args[0]), nil, &raw); err != nil {
				return err
			}
			return o.printWorkspace(raw, showSecrets)
		},
	}
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "show the secret values of the storage credentials")
	return cmd
}

// secretKeys are the credential values get hides by default.
var secretKeys = map[string]bool{"AWS_SECRET_ACCESS_KEY": true, "secret": true, "AWS_SESSION_TOKEN": true}

const hidden = "(hidden: --show-secrets)"

func (o *options) printWorkspace(raw json.RawMessage, showSecrets bool) error {
	var ws workspace
	var doc map[string]any
	if err := json.Unmarshal(raw, &ws); err != nil {
		return fmt.Errorf("decode workspace: %w", err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("decode workspace: %w", err)
	}
	if !showSecrets {
		hideSecrets(&ws, doc)
	}
	if o.wantJSON() {
		return printJSON(o.io.out, doc)
	}
	return printWorkspaceTable(o, ws)
}

func hideSecrets(ws *workspace, doc map[string]any) {
	if ws.Storage != nil {
		for k := range ws.Storage.Credentials {
			if secretKeys[k] {
				ws.Storage.Credentials[k] = hidden
			}
		}
	}
	st, _ := doc["storage"].(map[string]any)
	creds, _ := st["credentials"].(map[string]any)
	for k := range creds {
		if secretKeys[k] {
			creds[k] = hidden
		}
	}
}

func printWorkspaceTable(o *options, ws workspace) error {
	t := newTable(o.io.out, "FIELD", "VALUE")
	t.row("name", ws.Name)
	t.row("status", ws.Status)
	t.row("owner", dash(ws.Owner))
	if ws.Status == "failed" {
		t.row("failed_step", dash(ws.FailedStep))
		t.row("last_error", dash(ws.LastError))
	} else if ws.Step != "" {
		t.row("step", ws.Step)
	}
	if ws.LastMemberError != "" {
		t.row("last_member_error", ws.LastMemberError)
	}
	if ws.QuotaMB != nil {
		t.row("quota_mb", strconv.FormatInt(*ws.QuotaMB, 10))
	}
	for _, m := range ws.Members {
		t.row("member", memberLabel(m)+" "+m.Role)
	}
	t.row("created", ws.CreatedAt.Format(time.RFC3339))
	t.row("updated", ws.UpdatedAt.Format(time.RFC3339))
	if ws.Storage == nil || ws.Storage.Credentials == nil {
		t.row("storage", "-")
	} else {
		for _, k := range sortedKeys(ws.Storage.Credentials) {
			t.row("storage."+k, ws.Storage.Credentials[k])
		}
	}
	return t.flush()
}

func memberLabel(m member) string {
	if m.Kind == "client" && m.ClientID != "" {
		return m.ClientID + " (client)"
	}
	return m.Username
}

func newList(o *options) *cobra.Command {
	var status, owner string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the workspaces you may see: name, status, owner, members, age",
		Example: `  wsctl list
  wsctl list --status failed --owner example-user-1
  wsctl list -o json --limit 20`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			items, err := listAll(cmd, c, status, owner, limit)
			if err != nil {
				return err
			}
			if o.wantJSON() {
				return printJSON(o.io.out, items)
			}
			t := newTable(o.io.out, "NAME", "STATUS", "OWNER", "MEMBERS", "AGE")
			now := time.Now()
			for _, ws := range items {
				t.row(ws.Name, ws.Status, dash(ws.Owner), strconv.Itoa(len(ws.Members)), age(ws.CreatedAt, now))
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only this status: provisioning, ready, failed, deleting, deleted")
	f.StringVar(&owner, "owner", "", "only workspaces of this owner")
	f.IntVar(&limit, "limit", 0, "at most this many (default: every one, page by page)")
	return cmd
}

// listPage is the largest page the API gives.
const listPage = 500

// listAll follows the list's cursor until limit workspaces (0: all).
func listAll(cmd *cobra.Command, c *client, status, owner string, limit int) ([]workspace, error) {
	var out []workspace
	cursor := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(listPage)}}
		for k, v := range map[string]string{"status": status, "owner": owner, "cursor": cursor} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var p page[workspace]
		if err := c.call(cmd.Context(), "GET", "/workspaces?"+q.Encode(), nil, &p); err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if limit > 0 && len(out) >= limit {
			return out[:limit], nil
		}
		if p.NextCursor == nil {
			return out, nil
		}
		cursor = *p.NextCursor
	}
}

func newDelete(o *options) *cobra.Command {
	var purge, force, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a workspace (its client, roles, bucket, policies and keys), optionally waiting until it is gone",
		Example: `  wsctl delete ws-demo --wait
  wsctl delete ws-demo --purge   # also empties a bucket that still holds objects
  wsctl delete ws-stuck --force  # from any state (platform admins): abandons a pending run, purges`,
		Args: exactArgs(1, "the workspace name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if purge {
				q.Set("purge", "true")
			}
			if force {
				q.Set("force", "true")
			}
			path := wsPath(args[0])
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var a accepted
			if err := c.call(cmd.Context(), "DELETE", path, nil, &a); err != nil {
				return err
			}
			a.Name = or(a.Name, args[0])
			if !wait {
				return o.printAccepted(a)
			}
			return o.follow(cmd.Context(), c, a, sagaDelete, timeout)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&purge, "purge", false, "empty the bucket first if it holds objects")
	f.BoolVar(&force, "force", false, "from any state (platform admins): abandon a pending run, remove what is ours with its data")
	f.BoolVar(&wait, "wait", false, "follow the deletion step by step until deleted (exit 0) or failed (exit 1)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	return cmd
}

// exactArgs wants n arguments, naming them in the usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s (got %d arguments: %q)", cmd.CommandPath(), what, len(args), args)
		}
		return nil
	}
}

// rangeArgs wants from min to max arguments.
func rangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usagef("%s takes %s (got %d arguments)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// group makes a command that only holds subcommands refuse an unknown
// one as bad usage (cobra would print the help and exit 0).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return cmd.Help()
	}
	return cmd
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments (got %s)", cmd.CommandPath(), strings.Join(args, " "))
	}
	return nil
}
