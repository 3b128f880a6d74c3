package secret

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Credential is one entry of a credentials file: the login for one device.
type Credential struct {
	Host     string
	Username string
	Password string
}

// CredentialsFile is an external device credentials file, as the Sectigo Citrix ADC agent reads
// with -c: a list of entries keyed by device host, kept apart from the certificate configuration
// so that it can be encrypted with sops (fully, or only the passwords with
// --encrypted-regex '^password$'):
//
//	credentials:
//	  - host: 192.0.2.10
//	    username: admin
//	    password: john_1234
//	  - host: adc2.example.com
//	    username: nsroot
//	    password: ...
//
// The list may sit under any single top-level key (the agent's documentation does not preserve
// the key's name, so "credentials:", "citrix:" or any other is accepted), or, in a plain file
// only, at the top level: sops cannot encrypt a YAML document whose top level is a list.
// JSON files of the same shape are accepted too.
type CredentialsFile struct {
	Path      string
	Encrypted bool
	// Warning is set when a plain (unencrypted) file can be read by group or others.
	Warning *PermissionWarning

	entries []Credential
	byHost  map[string]int
}

// LoadCredentialsFile reads a credentials file, decrypting it if it is a sops file, with keys found
// as the sops CLI finds them.
func LoadCredentialsFile(ctx context.Context, path string) (*CredentialsFile, error) {
	return (&Decrypter{}).LoadCredentialsFile(ctx, path)
}

// LoadCredentialsFile reads a credentials file, decrypting it if it is a sops file.
func (d *Decrypter) LoadCredentialsFile(ctx context.Context, path string) (*CredentialsFile, error) {
	data, encrypted, err := d.readFile(ctx, path)
	if err != nil {
		return nil, err
	}
	c, err := ParseCredentials(data, path, encrypted)
	if err != nil {
		return nil, err
	}
	if !encrypted {
		c.Warning, _ = CheckPermissions(path)
	}
	return c, nil
}

// LoadCredentialsFile reads a credentials file through the Resolver: the file is cached, a loose
// plain file is reported by Warnings, and every password is registered with the Redactor (with
// the HTTP Basic credentials built from it).
func (r *Resolver) LoadCredentialsFile(ctx context.Context, path string) (*CredentialsFile, error) {
	f, err := r.load(ctx, path)
	if err != nil {
		return nil, err
	}
	abs := r.abs(path)
	c, err := ParseCredentials(f.data, abs, f.encrypted)
	if err != nil {
		return nil, err
	}
	if !f.encrypted {
		c.Warning, _ = CheckPermissions(abs)
	}
	if r.Redactor != nil {
		for _, e := range c.entries {
			r.Redactor.AddBasicAuth(e.Username, e.Password)
		}
	}
	return c, nil
}

// ParseCredentials parses the plaintext of a credentials file; name is used in errors. Line
// numbers are given for plain files only: those of a decrypted document need not match the file.
func ParseCredentials(data []byte, name string, encrypted bool) (*CredentialsFile, error) {
	c := &CredentialsFile{Path: name, Encrypted: encrypted, byHost: map[string]int{}}
	fail := func(n *yaml.Node, entry int, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if entry > 0 {
			msg = fmt.Sprintf("entry %d: %s", entry, msg)
		}
		if n != nil && !encrypted {
			msg = fmt.Sprintf("line %d: %s", n.Line, msg)
		}
		return fileError(name, fmt.Errorf("credentials file: %s", msg))
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, fileError(name, fmt.Errorf("credentials file: not a YAML or JSON document: %s", yamlErrorWithoutValues(err)))
	}
	root := &doc
	for root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	list := root
	if root.Kind == yaml.MappingNode {
		var keys []*yaml.Node
		var values []*yaml.Node
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "sops" {
				continue // sops metadata, if the document was not decrypted by us
			}
			keys = append(keys, root.Content[i])
			values = append(values, root.Content[i+1])
		}
		if len(keys) != 1 || values[0].Kind != yaml.SequenceNode {
			return nil, fail(root, 0, "expected a list of entries (host, username, password) under one top-level key such as credentials:, found %d top-level keys", len(keys))
		}
		list = values[0]
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fail(list, 0, "expected a list of entries (host, username, password), under one top-level key such as credentials:")
	}
	if len(list.Content) == 0 {
		return nil, fail(list, 0, "the list of entries is empty")
	}
	for i, item := range list.Content {
		entry := i + 1
		if item.Kind != yaml.MappingNode {
			return nil, fail(item, entry, "expected a mapping with host, username and password")
		}
		var cred Credential
		seen := map[string]bool{}
		for k := 0; k+1 < len(item.Content); k += 2 {
			key, val := item.Content[k], item.Content[k+1]
			var dst *string
			switch key.Value {
			case "host":
				dst = &cred.Host
			case "username":
				dst = &cred.Username
			case "password":
				dst = &cred.Password
			default:
				return nil, fail(key, entry, "unknown key %q: an entry has host, username and password only", key.Value)
			}
			if seen[key.Value] {
				return nil, fail(key, entry, "%s is given twice", key.Value)
			}
			seen[key.Value] = true
			if val.Kind != yaml.ScalarNode || val.Tag == "!!null" {
				return nil, fail(val, entry, "%s must be a single value", key.Value)
			}
			*dst = val.Value
		}
		for _, req := range []struct {
			name  string
			value string
		}{{"host", cred.Host}, {"username", cred.Username}, {"password", cred.Password}} {
			if strings.TrimSpace(req.value) == "" {
				return nil, fail(item, entry, "%s is missing or empty", req.name)
			}
		}
		norm := normalizeHost(cred.Host)
		if prev, dup := c.byHost[norm]; dup {
			return nil, fail(item, entry, "host %s is already given by entry %d", cred.Host, prev+1)
		}
		c.byHost[norm] = len(c.entries)
		c.entries = append(c.entries, cred)
	}
	return c, nil
}

// Lookup returns the login for a device host. Hosts compare case-insensitively, ignoring a
// trailing dot and IPv6 brackets; a host:port also finds an entry for the bare host.
func (c *CredentialsFile) Lookup(host string) (username, password string, ok bool) {
	i, ok := c.byHost[normalizeHost(host)]
	if !ok {
		if h, _, err := net.SplitHostPort(host); err == nil {
			i, ok = c.byHost[normalizeHost(h)]
		}
	}
	if !ok {
		return "", "", false
	}
	return c.entries[i].Username, c.entries[i].Password, true
}

// Hosts returns the hosts of the file's entries, sorted.
func (c *CredentialsFile) Hosts() []string {
	out := make([]string, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e.Host)
	}
	sort.Strings(out)
	return out
}

// Len returns the number of entries.
func (c *CredentialsFile) Len() int { return len(c.entries) }

func normalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSuffix(h, ".")
	h = strings.TrimPrefix(h, "[")
	return strings.TrimSuffix(h, "]")
}
