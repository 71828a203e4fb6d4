package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/google/uuid"

	"github.com/spf13/cobra"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
)

// Source is the CloudEvents source of the commands wsctl publishes.
const Source = "urn:eo-workspaces:wsctl"

func newPublish(o *options) *cobra.Command {
	var typ, ws, data, actor, file string
	cmd := &cobra.Command{
		Use:   "publish (--type TYPE --workspace NAME [--data JSON] | --file EVENT.json)",
		Short: "Publish a command straight onto NATS, as other systems do, after checking it against its schema",
		Long: `Builds a CloudEvent (or takes a whole one with --file, - for stdin), checks it against
the JSON Schema of its type and publishes it on workspace.cmd.<workspace>.<command>
with its id as Nats-Msg-Id. A command that fails its schema is not published: wsctl
says which field is wrong and exits 1. Only commands may be published, never events.`,
		Example: `  wsctl publish --type workspace.retry --workspace ws-demo
  wsctl publish --type workspace.member.add --workspace ws-demo \
      --data '{"username":"example-user-2","role":"ws_viewer"}'
  wsctl publish --file replayed-command.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := publishBody(o, typ, ws, data, actor, file)
			if err != nil {
				return err
			}
			v, err := schemas.New()
			if err != nil {
				return fmt.Errorf("schemas: %w", err)
			}
			env, err := checkCommand(v, raw)
			if err != nil {
				return err
			}
			js, closeNATS, err := o.jetStream()
			if err != nil {
				return err
			}
			defer closeNATS()
			pub, err := events.NewPublisher(js, v).Publish(cmd.Context(), env)
			if err != nil {
				return err
			}
			return o.printPublished(env, pub)
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "command type, e.g. workspace.retry, workspace.member.add")
	f.StringVar(&ws, "workspace", "", "the workspace the command is for (the CloudEvent subject)")
	f.StringVar(&data, "data", "{}", "the command's data, as JSON")
	f.StringVar(&actor, "actor", "", "who asks (default: wsctl:<your login>)")
	f.StringVar(&file, "file", "", "a whole CloudEvent in structured JSON, - for stdin")
	return cmd
}

// publishBody is the CloudEvent to publish, built from the flags or read
// from --file.
func publishBody(o *options, typ, ws, data, actor, file string) ([]byte, error) {
	if file != "" {
		if typ != "" || ws != "" {
			return nil, usagef("--file takes a whole CloudEvent: leave out --type and --workspace")
		}
		return readFileOrStdin(o, file)
	}
	if typ == "" || ws == "" {
		return nil, usagef("publish needs --type and --workspace, or --file")
	}
	spec, ok := events.Lookup(typ)
	if !ok || spec.Kind != events.KindCommand {
		return nil, usagef("--type %q is not a command type; commands are %v", typ, commandTypes())
	}
	if !json.Valid([]byte(data)) {
		return nil, usagef("--data is not valid JSON: %s", data)
	}
	env := map[string]any{"specversion": events.SpecVersion, "id": newID(), "source": Source, "type": typ,
		"subject": ws, "time": nowRFC3339(), "datacontenttype": events.ContentTypeJSON,
		"data": json.RawMessage(data), "actor": or(actor, defaultActor())}
	env["correlationid"] = env["id"]
	return json.Marshal(env)
}

func readFileOrStdin(o *options, file string) ([]byte, error) {
	if file == "-" {
		b, err := io.ReadAll(o.io.in)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("--file: %v", err)
	}
	return b, nil
}

// checkCommand validates a CloudEvent against its schema and refuses
// anything but a command.
func checkCommand(v events.SchemaValidator, raw []byte) (events.Envelope, error) {
	env, err := events.Parse(raw, v)
	if err != nil {
		return env, fmt.Errorf("not published: the command breaks its schema: %w", err)
	}
	if spec, ok := events.Lookup(env.Type); !ok || spec.Kind != events.KindCommand {
		return env, usagef("not published: %s is not a command type; commands are %v", env.Type, commandTypes())
	}
	return env, nil
}

func commandTypes() []string {
	var out []string
	for _, t := range events.Types() {
		if s, _ := events.Lookup(t); s.Kind == events.KindCommand {
			out = append(out, t)
		}
	}
	return out
}

func defaultActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "wsctl:" + u.Username
	}
	return "wsctl"
}

func (o *options) printPublished(env events.Envelope, p events.Published) error {
	if o.wantJSON() {
		return printJSON(o.io.out, map[string]any{"id": env.ID, "type": env.Type, "subject": env.Subject,
			"stream": p.Stream, "sequence": p.Sequence, "duplicate": p.Duplicate})
	}
	dup := ""
	if p.Duplicate {
		dup = " (a duplicate: the stream already held this id)"
	}
	_, err := fmt.Fprintf(o.io.out, "published %s for %s: id %s, %s sequence %d%s\n", env.Type, env.Subject, env.ID, p.Stream, p.Sequence, dup)
	return err
}

func newID() string { return uuid.NewString() }

func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339Nano) }
