package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// deadLetter is one dead letter as the API lists and shows it.
type deadLetter struct {
	Seq              uint64          `json:"seq"`
	Kind             string          `json:"kind"`
	Reason           string          `json:"reason"`
	OriginalSubject  string          `json:"original_subject"`
	OriginalSequence uint64          `json:"original_sequence,omitempty"`
	Time             time.Time       `json:"time"`
	Type             string          `json:"type,omitempty"`
	Workspace        string          `json:"workspace,omitempty"`
	ID               string          `json:"id,omitempty"`
	Command          json.RawMessage `json:"command,omitempty"`
	Body             string          `json:"body,omitempty"`
}

func newDLQ(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Commands never acted on (dead letters): list, show, replay, discard (platform admins)",
		Example: `  wsctl dlq list
  wsctl dlq show 12
  wsctl dlq show 12 -o json | jq .command > fixed.json   # edit it, then
  wsctl dlq replay 12 --file fixed.json
  wsctl dlq discard 12`,
	}
	cmd.AddCommand(newDLQList(o), newDLQShow(o), newDLQReplay(o), newDLQDiscard(o))
	return group(cmd)
}

func newDLQList(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Every dead letter, oldest first, with its reason",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var all []deadLetter
			for cursor := ""; ; {
				var page struct {
					Items      []deadLetter `json:"items"`
					NextCursor *string      `json:"next_cursor"`
				}
				path := "/deadletters?limit=500"
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				if err := c.call(cmd.Context(), "GET", path, nil, &page); err != nil {
					return err
				}
				all = append(all, page.Items...)
				if page.NextCursor == nil {
					break
				}
				cursor = *page.NextCursor
			}
			if o.wantJSON() {
				return printJSON(o.io.out, all)
			}
			t := newTable(o.io.out, "SEQ", "KIND", "AGE", "WORKSPACE", "TYPE", "REASON")
			now := time.Now()
			for _, d := range all {
				t.row(strconv.FormatUint(d.Seq, 10), d.Kind, age(d.Time, now), dash(d.Workspace), dash(d.Type), d.Reason)
			}
			return t.flush()
		},
	}
}

func newDLQShow(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "show SEQ",
		Short: "One dead letter with the message as it was kept",
		Args:  exactArgs(1, "the dead letter's sequence"),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := dlqSeq(args[0])
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var d deadLetter
			if err := c.call(cmd.Context(), "GET", "/deadletters/"+seq, nil, &d); err != nil {
				return err
			}
			if o.wantJSON() {
				return printJSON(o.io.out, d)
			}
			return printDeadLetter(o, d)
		},
	}
}

func printDeadLetter(o *options, d deadLetter) error {
	fmt.Fprintf(o.io.out, "seq:       %d\nkind:      %s\nreason:    %s\nsubject:   %s (sequence %d)\ntime:      %s\n",
		d.Seq, d.Kind, d.Reason, d.OriginalSubject, d.OriginalSequence, d.Time.Format(time.RFC3339))
	if len(d.Command) > 0 {
		fmt.Fprintln(o.io.out, "command:")
		return printJSON(o.io.out, d.Command)
	}
	_, err := fmt.Fprintf(o.io.out, "body:      %q\n", d.Body)
	return err
}

func newDLQReplay(o *options) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "replay SEQ [--file FIXED.json]",
		Short: "Publish a dead letter's command again, or the fixed one in --file; the dead letter is then removed",
		Long: `The command is schema-checked by the API first. It keeps its id: one JetStream still
remembers (its duplicate window) is refused; replay later, or give the fixed command a new id.`,
		Args: exactArgs(1, "the dead letter's sequence"),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := dlqSeq(args[0])
			if err != nil {
				return err
			}
			var body any
			if file != "" {
				raw, err := os.ReadFile(file)
				if err != nil {
					return usagef("--file: %v", err)
				}
				if !json.Valid(raw) {
					return usagef("--file %s is not JSON", file)
				}
				body = map[string]json.RawMessage{"command": raw}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var out struct {
				Seq       uint64 `json:"seq"`
				Subject   string `json:"subject"`
				CommandID string `json:"command_id"`
			}
			if err := c.call(cmd.Context(), "POST", "/deadletters/"+seq+"/replay", body, &out); err != nil {
				return err
			}
			if o.wantJSON() {
				return printJSON(o.io.out, out)
			}
			_, err = fmt.Fprintf(o.io.out, "dead letter %d replayed on %s (command %s)\n", out.Seq, out.Subject, out.CommandID)
			return err
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the fixed command, a CloudEvent as on NATS (default: the one kept)")
	return cmd
}

func newDLQDiscard(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "discard SEQ",
		Short: "Remove a dead letter for good",
		Args:  exactArgs(1, "the dead letter's sequence"),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := dlqSeq(args[0])
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", "/deadletters/"+seq, nil, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(o.io.out, "dead letter %s discarded\n", seq)
			return err
		},
	}
}

// dlqSeq checks a sequence argument before anything is sent.
func dlqSeq(arg string) (string, error) {
	n, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || n == 0 {
		return "", usagef("%q is not a dead letter's sequence (a positive whole number)", arg)
	}
	return strconv.FormatUint(n, 10), nil
}
