package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/kilnhq/kiln/project"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// maxSecretSize bounds a secret's value: secrets are passwords and keys, not files.
const maxSecretSize = 64 << 10

func (a *app) secretCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "secret",
		Short: "Set, list and remove the service's secrets (values are never shown)",
		Long: `A secret is declared by name in the manifest (secrets: [DB_PASSWORD]) and referenced as
${secret:DB_PASSWORD} from app.env values and component settings. Its value is
encrypted by the stack's secrets provider (the passphrase provider by default;
KILN_PASSPHRASE sets the passphrase, KILN_SECRETS_PROVIDER any Pulumi secrets-provider
URL for a new stack) and handed to each instance when it starts: it is never baked into
an image. Setting or removing a secret makes a new release: the next kiln rollout
replaces the instances even when the image is unchanged.`,
		Args: noArgs,
	}
	c.AddCommand(a.secretSetCmd(), a.secretListCmd(), a.secretRmCmd())
	return c
}

func oneName(c *cobra.Command, args []string) error {
	if len(args) != 1 {
		return &usageError{msg: fmt.Sprintf("kiln secret %s takes one secret name, got %d arguments", c.Name(), len(args))}
	}
	return nil
}

func (a *app) secretSetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME",
		Short: "Set a secret from standard input, or from a prompt that does not echo",
		Args:  oneName,
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			p, err := a.load()
			if err != nil {
				return err
			}
			name := args[0]
			if err := p.SecretDeclared(name); err != nil {
				return err
			}
			value, err := a.readSecret(name)
			if err != nil {
				return err
			}
			if len(value) == 0 {
				return &usageError{msg: fmt.Sprintf("secret %s: the value is empty", name)}
			}
			tgt, err := a.target(ctx, p)
			if err != nil {
				return err
			}
			enc, ok := tgt.(project.SecretEncrypter)
			if !ok {
				return fmt.Errorf("the %s target cannot encrypt secrets", tgt.Name())
			}
			if err := p.SetSecret(ctx, enc, name, value); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: secret %s set; the next kiln rollout replaces the instances\n", p.Manifest.Service, name)
			return nil
		},
	}
}

// readSecret reads a secret's value: from a prompt without echo on a terminal, else all
// of standard input, less one trailing newline (what echo and a here-doc add).
func (a *app) readSecret(name string) ([]byte, error) {
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		fmt.Fprintf(a.stderr, "value of %s (not shown): ", name)
		v, err := term.ReadPassword(fd)
		fmt.Fprintln(a.stderr)
		if err != nil {
			return nil, fmt.Errorf("read secret %s: %w", name, err)
		}
		return v, nil
	}
	v, err := io.ReadAll(io.LimitReader(os.Stdin, maxSecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("read secret %s from standard input: %w", name, err)
	}
	if len(v) > maxSecretSize {
		return nil, &usageError{msg: fmt.Sprintf("secret %s: more than %d bytes on standard input", name, maxSecretSize)}
	}
	v = bytes.TrimSuffix(v, []byte("\n"))
	return bytes.TrimSuffix(v, []byte("\r")), nil
}

func (a *app) secretListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the secrets by name, with when and by whom each was set",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			list, err := p.Secrets()
			if err != nil {
				return err
			}
			if a.output == "json" {
				return json.NewEncoder(a.stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tSET\tBY")
			for _, s := range list {
				status, set, by := "set", s.SetAt.Local().Format(time.DateTime), s.User+"@"+s.Host
				switch {
				case !s.Set:
					status, set, by = "NOT SET (kiln secret set "+s.Name+")", "-", "-"
				case !s.Declared:
					status = "set, not in the manifest"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, status, set, by)
			}
			return tw.Flush()
		},
	}
}

func (a *app) secretRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a secret (a rollout of a manifest that still declares it is refused)",
		Args:  oneName,
		RunE: func(c *cobra.Command, args []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			if err := p.RemoveSecret(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: secret %s removed\n", p.Manifest.Service, args[0])
			return nil
		},
	}
}
