// Package secret is the core's secret handling: it reads sops-encrypted files in process, resolves
// the secret references of configuration values, loads external device credentials files, and
// masks every known secret in logs and messages.
//
// # sops files
//
// sops files are read with sops's own Go packages (github.com/getsops/sops/v3), so every file the
// sops CLI writes is read the same way: YAML, JSON, dotenv, INI and binary, fully or partially
// encrypted (encrypted_regex, unencrypted_suffix, …), for age, PGP (through the user's GnuPG
// keyring), or the cloud KMSs sops supports, with Shamir key groups. The MAC is always checked.
// That work is done by the certfleet-sops helper (cmd/certfleet-sops, package sopscodec), which
// this package starts for data that may be a sops document (MayBeSops): the sops library links
// every cloud KMS SDK, and certfleet should not pay their start-up cost on every command.
// Decrypted data stays in memory: it comes back through a pipe and nothing is written to disk.
//
//	data, err := secret.ReadFile(ctx, path)     // plaintext, decrypted if it is a sops file
//	data, err := secret.Decrypt(ctx, path)      // must be a sops file
//	out, err := secret.Encrypt(ctx, plain, "yaml", secret.EncryptOptions{AgeRecipients: …})
//
// A Decrypter can be given its own age identities or GnuPG home instead of sops's default lookup
// (see Decrypter). Errors are *FileError values naming the file; errors.Is tells ErrKeyNotFound
// (with the recipients and how to provide the key), ErrWrongKey, ErrTampered (MAC mismatch),
// ErrMalformed, ErrNotEncrypted, ErrAlreadyEncrypted and fs.ErrNotExist apart, across the helper
// as in process. No error quotes a decrypted value.
//
// # References in configuration values
//
// A Resolver expands ${env:NAME}, ${file:PATH} and ${sops:PATH#key.path} (see Resolver), caches
// each file it decrypts, and registers every resolved value with a Redactor. Plain files holding
// secrets that others can read are reported by Resolver.Warnings (see CheckPermissions).
//
// # Credentials files
//
// LoadCredentialsFile reads the Citrix agent's external credentials file (-c creds.yaml), plain or
// sops-encrypted, and looks logins up by device host (see CredentialsFile).
//
// # Redaction
//
// A Redactor masks registered secrets, and their usual encodings, in strings (Redact), in streams
// (Writer, which also catches a secret split across writes), and in hclog output (NewLogger,
// HclogOutput), which includes the logs plugins send to the host.
//
// # For the CLI
//
// certfleet secrets encrypt: read the plaintext, Encrypt, write the result atomically
// (core/atomicfile) with mode 0600. certfleet secrets decrypt: Decrypt to standard output.
// certfleet secrets check: resolve every reference; plain files are checked with CheckPermissions.
// RouteSopsLogs (or SetSopsLogOutput) sends sops's own warnings, relayed from the helper, to the
// CLI's logger.
package secret
