// Package migrate converts the Sectigo agents' files (the Citrix ADC agent's certificate profiles,
// scm.yaml and credentials file; the Palo Alto agent's config.yaml, certificate and fw_* firewall
// profiles and sectigo_credentials.yaml; the F5 agent's YAML in /etc/sectigo with its ACME
// settings) into a certfleet configuration directory, and reports what was mapped, what has no
// equivalent and what needs a decision.
//
// Secrets never leave encryption: every secret value (encrypted in the agent's file or not) is
// written to a sops file under secrets/ in the output, encrypted to the same recipients as the
// file it came from (or to --pgp/--age recipients for a plain file), and the configuration refers
// to it with ${sops:secrets/FILE#key}. A plain secret with no recipient to encrypt it to becomes an
// ${env:NAME} reference, listed as a decision.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/certfleet/certfleet/core/secret"
	"gopkg.in/yaml.v3"
)

// Agents migrate knows.
const (
	Citrix   = "citrix"
	PaloAlto = "paloalto"
	F5       = "f5"
)

// Options of a migration.
type Options struct {
	// From is the agent: citrix, paloalto or f5.
	From string
	// Inputs are files and directories (read for *.yaml and *.yml).
	Inputs []string
	// PGPFingerprints and AgeRecipients encrypt secrets that were plain in the agent's files (and
	// the F5 PCI secret migrate makes), besides any recipient of the agent's own encrypted files.
	PGPFingerprints []string
	AgeRecipients   []string
	// StatePath, when set, is written as state.path (else certfleet's default applies).
	StatePath string
	// GnuPGHome, when set, holds the PGP public keys (else $GNUPGHOME or ~/.gnupg).
	GnuPGHome string
}

// Line is one entry of the report.
type Line struct {
	Source string `json:"source"` // file: parameter
	Target string `json:"target,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Report says what became of every parameter read.
type Report struct {
	Mapped       []Line `json:"mapped"`
	NoEquivalent []Line `json:"no_equivalent"`
	Decisions    []Line `json:"decisions"`
}

// Result is a migration ready to be written.
type Result struct {
	Report Report
	// Files are the output files by relative path (certfleet.yaml, secrets/*.yaml).
	Files map[string][]byte
	// Config is the configuration written to certfleet.yaml.
	Config *Config
}

// source is one agent file, decrypted in memory when it is a sops file.
type source struct {
	path      string
	base      string // file name without extension
	doc       *yaml.Node
	raw       *yaml.Node // as stored: values of an encrypted file are ENC[...]
	encrypted bool
	pgp, age  []string // the sops recipients of an encrypted file
}

// migration carries one run's state.
type migration struct {
	ctx     context.Context
	opts    Options
	cfg     *Config
	report  Report
	secrets map[string]*secretFile // by source path
	order   []string
	fwNames map[string]string
}

// Migrate reads the agent's files and builds the certfleet configuration.
func Migrate(ctx context.Context, opts Options) (*Result, error) {
	files, err := expand(opts.Inputs)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no *.yaml or *.yml file among the inputs: name the agent's files or their directories")
	}
	m := &migration{ctx: ctx, opts: opts, cfg: newConfig(), secrets: map[string]*secretFile{}, fwNames: map[string]string{}}
	var sources []*source
	for _, f := range files {
		s, err := m.read(f)
		if err != nil {
			return nil, err
		}
		sources = append(sources, s)
	}
	switch opts.From {
	case Citrix:
		err = m.citrix(sources)
	case PaloAlto:
		err = m.paloalto(sources)
	case F5:
		err = m.f5(sources)
	default:
		return nil, fmt.Errorf("--from %q: use citrix, paloalto or f5", opts.From)
	}
	if err != nil {
		return nil, err
	}
	if len(m.cfg.Issuers) == 1 {
		for name := range m.cfg.Issuers {
			m.cfg.Defaults = &Defaults{Issuer: name}
		}
	}
	if opts.StatePath != "" {
		m.cfg.State = &State{Path: opts.StatePath}
	}
	res := &Result{Files: map[string][]byte{}, Config: m.cfg}
	if err := m.writeSecrets(res); err != nil {
		return nil, err
	}
	out, err := m.cfg.marshal()
	if err != nil {
		return nil, err
	}
	res.Files["certfleet.yaml"] = out
	res.Report = m.report
	return res, nil
}

// expand lists the YAML files of the inputs, directories read one level deep, sorted.
func expand(inputs []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if a, err := filepath.Abs(p); err == nil {
			p = a
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, in := range inputs {
		st, err := os.Stat(in)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in, err)
		}
		if !st.IsDir() {
			add(in)
			continue
		}
		entries, err := os.ReadDir(in)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in, err)
		}
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				add(filepath.Join(in, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *migration) read(path string) (*source, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s := &source{path: path, base: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}
	var rawDoc yaml.Node
	if err := yaml.Unmarshal(raw, &rawDoc); err != nil {
		return nil, fmt.Errorf("%s: not YAML: %w", path, err)
	}
	s.raw = docRoot(&rawDoc)
	s.doc = s.raw
	// A sops file is one with sops's top-level metadata entry (the test sops itself applies).
	if meta := get(s.raw, "sops"); meta != nil {
		s.encrypted = true
		for _, k := range items(get(meta, "pgp")) {
			s.pgp = append(s.pgp, str(get(k, "fp")))
		}
		for _, k := range items(get(meta, "age")) {
			s.age = append(s.age, str(get(k, "recipient")))
		}
		plain, err := secret.ReadFile(m.ctx, path)
		if err != nil {
			return nil, fmt.Errorf("%s is sops-encrypted and could not be decrypted here (migrate reads it as the agent did, with the same key): %w", path, err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(plain, &doc); err != nil {
			return nil, fmt.Errorf("%s: not YAML after decryption: %w", path, err)
		}
		s.doc = docRoot(&doc)
	}
	return s, nil
}

func (m *migration) mapped(src *source, param, target string) {
	m.report.Mapped = append(m.report.Mapped, Line{Source: src.base + ": " + param, Target: target})
}

func (m *migration) none(src *source, param, note string) {
	m.report.NoEquivalent = append(m.report.NoEquivalent, Line{Source: src.base + ": " + param, Note: note})
}

func (m *migration) decide(src *source, param, target, note string) {
	m.report.Decisions = append(m.report.Decisions, Line{Source: src.base + ": " + param, Target: target, Note: note})
}

// unknownKeys reports the keys of a mapping migrate did not read.
func (m *migration) unknownKeys(src *source, n *yaml.Node, prefix string, known map[string]bool) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !known[strings.ToLower(k)] && k != "sops" {
			m.none(src, prefix+k, "not a parameter the agent's manual lists; not migrated")
		}
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// name makes a configuration name (letters, digits, . _ -) from an agent's label.
func name(s string) string {
	n := strings.Trim(unsafeName.ReplaceAllString(strings.TrimSpace(s), "-"), "-._")
	if n == "" {
		n = "unnamed"
	}
	if len(n) > 120 {
		n = n[:120]
	}
	return n
}
