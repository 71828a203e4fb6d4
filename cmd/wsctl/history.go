package main

import (
	"encoding/json"
	"time"

	"github.com/spf13/cobra"
)

func newEvents(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "events NAME",
		Short: "A workspace's audit history, oldest first: every command with its actor, every step and status",
		Example: `  wsctl events ws-demo
  wsctl events ws-demo -o json | jq '.[] | select(.event.type == "workspace.step.failed")'`,
		Args: exactArgs(1, "the workspace name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			feed := &historyFeed{c: c, name: args[0], seen: map[string]bool{}}
			items, err := feed.next(cmd.Context())
			if err != nil {
				return err
			}
			if items == nil {
				items = []historyItem{}
			}
			if o.wantJSON() {
				return printJSON(o.io.out, items)
			}
			t := newTable(o.io.out, "TIME", "KIND", "TYPE", "ACTOR", "DETAIL")
			for _, it := range items {
				ce := it.envelope()
				t.row(it.Time.Local().Format(time.DateTime+".000"), it.Kind, ce.Type, dash(ce.Actor), detail(ce.Data))
			}
			return t.flush()
		},
	}
}

// detail renders an event's data on one line, as compact JSON.
func detail(data json.RawMessage) string {
	if len(data) == 0 || string(data) == "{}" {
		return "-"
	}
	var v any
	if json.Unmarshal(data, &v) != nil {
		return string(data)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
