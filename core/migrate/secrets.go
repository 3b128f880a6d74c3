package migrate

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/certfleet/certfleet/core/secret"
	"gopkg.in/yaml.v3"
)

// secretFile collects the secrets read from one agent file; it becomes secrets/<base>.yaml,
// encrypted to that file's recipients.
type secretFile struct {
	src     *source
	values  map[string]map[string]string
	targets map[string]map[string][]*string
	params  map[string]map[string]string // the agent parameter each value came from
}

var unsafeKey = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// secret records a secret value; *target is set to its reference when the secrets are written.
// The value is held in memory only.
func (m *migration) secret(src *source, group, field, param, value string, target *string) {
	sf := m.secrets[src.path]
	if sf == nil {
		sf = &secretFile{src: src, values: map[string]map[string]string{}, targets: map[string]map[string][]*string{}, params: map[string]map[string]string{}}
		m.secrets[src.path] = sf
		m.order = append(m.order, src.path)
	}
	group = strings.Trim(unsafeKey.ReplaceAllString(group, "_"), "_")
	if sf.values[group] == nil {
		sf.values[group], sf.targets[group], sf.params[group] = map[string]string{}, map[string][]*string{}, map[string]string{}
	}
	sf.values[group][field] = value
	sf.targets[group][field] = append(sf.targets[group][field], target)
	sf.params[group][field] = param
}

// secretAt reads a secret at path in a source, and records it.
func (m *migration) secretAt(src *source, path []any, group, field string, target *string) bool {
	n := rawAt(src.doc, path)
	v := str(n)
	if v == "" {
		return false
	}
	param := pathString(path)
	m.secret(src, group, field, param, v, target)
	return true
}

func pathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	return b.String()
}

// writeSecrets encrypts each file's secrets and points every reference at them.
func (m *migration) writeSecrets(res *Result) error {
	for _, path := range m.order {
		sf := m.secrets[path]
		src := sf.src
		pgp, age := src.pgp, src.age
		how := "re-encrypted with sops to the recipients of " + src.base
		if !src.encrypted {
			pgp, age = m.opts.PGPFingerprints, m.opts.AgeRecipients
			how = "was plain in " + src.base + "; encrypted with sops to --pgp/--age"
		}
		groups := sortedKeys(sf.values)
		if len(pgp) == 0 && len(age) == 0 {
			for _, g := range groups {
				for _, f := range sortedKeys(sf.values[g]) {
					env := "CERTFLEET_" + strings.ToUpper(strings.ReplaceAll(g+"_"+f, "-", "_"))
					for _, t := range sf.targets[g][f] {
						*t = "${env:" + env + "}"
					}
					m.decide(src, sf.params[g][f], "${env:"+env+"}", "plain in the agent's file and no recipient to encrypt it to: set "+env+" for certfleet, or rerun migrate with --pgp FINGERPRINT or --age RECIPIENT")
				}
			}
			continue
		}
		doc := map[string]map[string]string{}
		for _, g := range groups {
			doc[g] = sf.values[g]
		}
		plain, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		enc, err := secret.Encrypt(m.ctx, plain, "yaml", secret.EncryptOptions{PGPFingerprints: pgp, AgeRecipients: age, GnuPGHome: m.opts.GnuPGHome})
		clear(plain)
		if err != nil {
			return fmt.Errorf("encrypt the secrets of %s (PGP %v, age %v): %w", src.path, pgp, age, err)
		}
		file := "secrets/" + name(src.base) + ".yaml"
		res.Files[file] = enc
		for _, g := range groups {
			for _, f := range sortedKeys(sf.values[g]) {
				ref := "${sops:" + file + "#" + g + "." + f + "}"
				for _, t := range sf.targets[g][f] {
					*t = ref
				}
				m.mapped(src, sf.params[g][f], ref+" ("+how+")")
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
