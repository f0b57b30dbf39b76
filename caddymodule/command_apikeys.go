package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/apikey"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

func init() {
	fs := flag.NewFlagSet("workspace-profile-keys", flag.ContinueOnError)
	fs.String("config", "", "The Caddy config that names the key store (required)")
	fs.String("adapter", "", "The config adapter, e.g. caddyfile (default: by the file's name, as caddy run)")
	fs.String("store", "", "The key store, by name, when the config has several")
	fs.String("subject", "", "create: the key's owner (required); list: only this owner's keys")
	fs.String("kind", "", "create: user or service (required)")
	fs.String("name", "", "create: a name for the key, up to 100 characters")
	fs.String("expires", "", "create: when the key expires, RFC 3339 (default: never)")
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "workspace-profile-keys",
		Usage: "create|list|revoke --config <file> [--adapter <name>] [--store <name>] [--subject <id>] [--kind user|service] [--name <text>] [--expires <time>] [<id>]",
		Short: "Creates, lists or revokes the API keys of workspace_profile routes with Caddy stopped",
		Long: `
Manages the API keys of the workspace_profile routes of a config when
Caddy's admin endpoint is off (with it on, use the endpoint:
/workspace-profile/api-keys). The command reads the config, finds the
api_keys store of its workspace_profile handlers and opens it directly:

  create --subject <id> --kind user|service [--name <text>] [--expires <RFC 3339>]
  list [--subject <id>]
  revoke <id>

and prints the result as JSON; create prints the key, the only time it is
ever shown. A bolt file must not be held by a running Caddy (bbolt locks
it): stop Caddy first. A PostgreSQL store may be in use by running nodes;
they hear of a revocation by notification. A memory store lives only in
a running Caddy and is refused.`,
		Flags: fs,
		Func:  cmdWorkspaceProfileKeys,
	})
}

// keysCommand is one run of workspace-profile-keys, its flags read.
type keysCommand struct {
	action string
	args   []string
	flags  map[string]string // the flags given, by name
}

func cmdWorkspaceProfileKeys(fl caddycmd.Flags) (int, error) {
	c := keysCommand{flags: map[string]string{}}
	if args := fl.Args(); len(args) > 0 {
		c.action, c.args = args[0], args[1:]
	}
	for _, name := range []string{"config", "adapter", "store", "subject", "kind", "name", "expires"} {
		if fl.Changed(name) {
			c.flags[name] = fl.String(name)
		}
	}
	if err := c.run(context.Background(), os.Stdout); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// keysActionFlags are the flags each action takes besides config,
// adapter and store.
var keysActionFlags = map[string][]string{
	"create": {"subject", "kind", "name", "expires"},
	"list":   {"subject"},
	"revoke": {},
}

// check refuses a run that cannot be what was meant, before the config
// is read.
func (c keysCommand) check() error {
	allowed, ok := keysActionFlags[c.action]
	if !ok {
		return errors.New("the first argument is create, list or revoke")
	}
	for name := range c.flags {
		switch name {
		case "config", "adapter", "store":
			continue
		}
		if !containsName(allowed, name) {
			return fmt.Errorf("--%s does not apply to %s", name, c.action)
		}
	}
	switch {
	case c.action == "revoke" && len(c.args) != 1:
		return errors.New("revoke takes one argument: the key's id")
	case c.action != "revoke" && len(c.args) > 0:
		return fmt.Errorf("%s takes no argument; flags are written --name value", c.action)
	case c.flags["config"] == "":
		return errors.New("--config is required: the config that names the key store")
	}
	if sub, ok := c.flags["subject"]; ok && c.action == "list" {
		// as the admin endpoint: a subject no profile could have is a
		// mistake, not an owner with no keys (nor every owner)
		if items := profile.UserIDProblems(sub); len(items) > 0 {
			return errors.New("--subject: " + strings.ReplaceAll(items[0].Message, "UserId", "subject"))
		}
	}
	if c.action == "revoke" {
		// the key itself given for its id: it is now in a shell history
		if id, made := apikey.ParseMade(apikey.DefaultPrefix, c.args[0]); made {
			return errors.New("that is a key, not a key id: revoke it by its id, " + id + ", and treat the key as exposed")
		}
	}
	return nil
}

func containsName(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (c keysCommand) run(ctx context.Context, out io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	var req apikey.CreateRequest
	now := time.Now().UTC()
	if c.action == "create" {
		// the flags are checked as the admin endpoint checks a body
		body := map[string]string{}
		for _, name := range keysActionFlags["create"] {
			if v, ok := c.flags[name]; ok {
				body[name] = v
			}
		}
		raw, _ := json.Marshal(body)
		var err error
		if req, err = apikey.ParseCreateRequest(raw, now); err != nil {
			return fmt.Errorf("create: %w", err)
		}
	}
	cfg, _, _, err := caddycmd.LoadConfig(c.flags["config"], c.flags["adapter"])
	if err != nil {
		return fmt.Errorf("reading the config: %w", err)
	}
	specs, err := findKeyStoreSpecs(cfg)
	if err != nil {
		return err
	}
	spec, err := chooseKeyStoreSpec(specs, c.flags["store"])
	if err != nil {
		return err
	}
	store, closeStore, err := openKeyStoreSpec(ctx, spec)
	if err != nil {
		return err
	}
	defer closeStore()
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	log := caddy.Log().Named("workspace_profile.keys_command")
	switch c.action {
	case "create":
		key, rec, err := makeKey(ctx, store, spec.Prefix, req, now)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		log.Info("API key created", zap.String("key_id", rec.ID), zap.String("subject", rec.Subject),
			zap.String("kind", string(rec.Kind)), zap.String("store", spec.Name))
		return enc.Encode(createdKey{ID: rec.ID, Key: key, Subject: rec.Subject, Kind: rec.Kind, Name: rec.Name,
			Created: rec.Created, Expires: timeOrNull(rec.Expires)})
	case "list":
		recs, err := store.List(ctx, c.flags["subject"])
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		list := make([]listedKey, 0, len(recs))
		for _, r := range recs {
			list = append(list, listedKey{ID: r.ID, Subject: r.Subject, Kind: r.Kind, Name: r.Name, Created: timeOrNull(r.Created),
				Expires: timeOrNull(r.Expires), Revoked: timeOrNull(r.Revoked), LastUsed: timeOrNull(r.LastUsed)})
		}
		return enc.Encode(list)
	}
	rec, err := store.Revoke(ctx, c.args[0], now.Truncate(time.Second))
	if errors.Is(err, apikey.ErrNotFound) {
		return fmt.Errorf("revoke: no API key with that id in %s", spec.Name)
	}
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	log.Info("API key revoked", zap.String("key_id", rec.ID), zap.String("subject", rec.Subject),
		zap.String("kind", string(rec.Kind)), zap.String("store", spec.Name))
	return enc.Encode(struct {
		ID      string    `json:"id"`
		Revoked time.Time `json:"revoked"`
	}{rec.ID, rec.Revoked.UTC()})
}
