package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/certfleet/certfleet/core/atomicfile"
	"github.com/certfleet/certfleet/core/boundedfile"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/urfave/cli/v2"
)

func secretsCommand() *cli.Command {
	return &cli.Command{
		Name:  "secrets",
		Usage: "encrypt, decrypt and check secrets (sops files, in process: no sops binary needed)",
		Subcommands: []*cli.Command{
			{
				Name:      "encrypt",
				Usage:     "encrypt a YAML or JSON file with sops (whole, or only the values whose keys match --encrypted-regex)",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "age", Usage: "age recipient (age1...), repeatable"},
					&cli.StringSliceFlag{Name: "pgp", Usage: "PGP key fingerprint, repeatable (public key in your GnuPG keyring)"},
					&cli.StringFlag{Name: "encrypted-regex", Usage: "encrypt only values whose key matches, e.g. '^(password|client_secret)$'"},
					&cli.BoolFlag{Name: "in-place", Aliases: []string{"i"}, Usage: "replace FILE instead of writing to standard output"},
				},
				Action: secretsEncrypt,
			},
			{
				Name:      "decrypt",
				Usage:     "decrypt a sops file to standard output (or in place)",
				ArgsUsage: "FILE",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "in-place", Aliases: []string{"i"}, Usage: "replace FILE with its plaintext (mode 0600)"}},
				Action:    secretsDecrypt,
			},
			{
				Name:   "check",
				Usage:  "resolve every secret reference of the configuration and report the ones that fail (no value is printed)",
				Action: secretsCheck,
			},
		},
	}
}

func oneFile(c *cli.Context, usage string) (string, error) {
	if c.NArg() != 1 {
		return "", cli.Exit("usage: "+usage, 2)
	}
	return c.Args().First(), nil
}

// output writes data to FILE (atomically, 0600) with --in-place, else to standard output.
func output(c *cli.Context, path string, data []byte) error {
	if c.Bool("in-place") {
		return atomicfile.Write(path, data, 0o600)
	}
	_, err := c.App.Writer.Write(data)
	return err
}

func secretsEncrypt(c *cli.Context) error {
	path, err := oneFile(c, "certfleet secrets encrypt [--age RECIPIENT | --pgp FINGERPRINT] [--encrypted-regex RE] [--in-place] FILE")
	if err != nil {
		return err
	}
	if len(c.StringSlice("age")) == 0 && len(c.StringSlice("pgp")) == 0 {
		return cli.Exit("give at least one recipient with --age or --pgp", 2)
	}
	plain, err := boundedfile.Read(path, boundedfile.DefaultLimit)
	if err != nil {
		return err
	}
	enc, err := secret.Encrypt(c.Context, plain, secret.FormatForPath(path), secret.EncryptOptions{
		AgeRecipients: c.StringSlice("age"), PGPFingerprints: c.StringSlice("pgp"), EncryptedRegex: c.String("encrypted-regex"),
	})
	if errors.Is(err, secret.ErrAlreadyEncrypted) {
		return cli.Exit(fmt.Sprintf("%s is already sops-encrypted", path), 2)
	}
	if err != nil {
		return err
	}
	return output(c, path, enc)
}

func secretsDecrypt(c *cli.Context) error {
	path, err := oneFile(c, "certfleet secrets decrypt [--in-place] FILE")
	if err != nil {
		return err
	}
	plain, err := secret.Decrypt(c.Context, path)
	if err != nil {
		return err
	}
	return output(c, path, plain)
}

func secretsCheck(c *cli.Context) error {
	redactor := secret.NewRedactor()
	log, out := redactedLogger(c, redactor)
	defer out.Flush()
	cfg, err := loadConfig(c.Context, c.String("config"), redactor, true, log)
	if err != nil {
		return cli.Exit(redactor.Redact(err.Error()), 1)
	}
	fmt.Fprintf(c.App.Writer, "every secret reference in %s resolves (%d values registered for redaction)\n",
		strings.Join(cfg.Files, ", "), redactor.Len())
	return nil
}
