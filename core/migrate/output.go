package migrate

import (
	"bytes"

	"gopkg.in/yaml.v3"
)

// Config is the certfleet configuration migrate writes; field order is the order in the file.
type Config struct {
	Version      string                  `yaml:"version"`
	State        *State                  `yaml:"state,omitempty"`
	Logging      *Logging                `yaml:"logging,omitempty"`
	Defaults     *Defaults               `yaml:"defaults,omitempty"`
	Issuers      map[string]*Issuer      `yaml:"issuers,omitempty"`
	Devices      map[string]*Device      `yaml:"devices,omitempty"`
	Certificates map[string]*Certificate `yaml:"certificates,omitempty"`
	// Pending are certificates that cannot be written until a decision is made (they would not
	// pass validate); they are written commented out.
	Pending map[string]*Certificate `yaml:"-"`
}

type State struct {
	Path string `yaml:"path"`
}

// Defaults names the issuer when there is one, so that snippets from `inventory --suggest` need
// no issuer of their own.
type Defaults struct {
	Issuer string `yaml:"issuer,omitempty"`
}

type Logging struct {
	Level string `yaml:"level,omitempty"`
}

type Issuer struct {
	Type string `yaml:"type"`
	SCM  *SCM   `yaml:"scm,omitempty"`
	ACME *ACME  `yaml:"acme,omitempty"`
}

type SCM struct {
	API          string `yaml:"api"`
	BaseURL      string `yaml:"base_url"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	TokenURL     string `yaml:"token_url,omitempty"`
	InitialDelay string `yaml:"initial_delay,omitempty"`
}

type ACME struct {
	DirectoryURL string `yaml:"directory_url"`
	EAB          *EAB   `yaml:"eab,omitempty"`
	Contact      string `yaml:"contact,omitempty"`
}

type EAB struct {
	KeyID   string `yaml:"key_id"`
	HMACKey string `yaml:"hmac_key"`
}

type Device struct {
	Plugin         string             `yaml:"plugin"`
	Address        string             `yaml:"address"`
	AllowPlainHTTP bool               `yaml:"allow_plain_http,omitempty"`
	TLS            *TLS               `yaml:"tls,omitempty"`
	Credentials    map[string]*string `yaml:"credentials,omitempty"`
	Options        map[string]any     `yaml:"options,omitempty"`
}

type TLS struct {
	CABundle           string `yaml:"ca_bundle,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}

type Certificate struct {
	Device        string         `yaml:"device"`
	Issuer        string         `yaml:"issuer"`
	Subject       *Subject       `yaml:"subject,omitempty"`
	SANs          *SANs          `yaml:"sans,omitempty"`
	Key           *Key           `yaml:"key,omitempty"`
	RenewBefore   string         `yaml:"renew_before,omitempty"`
	Bindings      []Binding      `yaml:"bindings"`
	IssuerOptions map[string]any `yaml:"issuer_options,omitempty"`
	Enabled       *bool          `yaml:"enabled,omitempty"`
}

type Subject struct {
	CommonName   string `yaml:"common_name,omitempty"`
	Organization string `yaml:"organization,omitempty"`
	Locality     string `yaml:"locality,omitempty"`
	State        string `yaml:"state,omitempty"`
	Country      string `yaml:"country,omitempty"`
	Email        string `yaml:"email,omitempty"`
}

type SANs struct {
	DNS []string `yaml:"dns,omitempty"`
	IP  []string `yaml:"ip,omitempty"`
}

type Key struct {
	Type string `yaml:"type"`
	Bits int    `yaml:"bits"`
}

type Binding struct {
	Kind    string         `yaml:"kind"`
	Name    string         `yaml:"name"`
	SNI     bool           `yaml:"sni,omitempty"`
	Options map[string]any `yaml:"options,omitempty"`
}

func newConfig() *Config {
	return &Config{Version: "v1", Issuers: map[string]*Issuer{}, Devices: map[string]*Device{},
		Certificates: map[string]*Certificate{}, Pending: map[string]*Certificate{}}
}

const header = "# Written by `certfleet migrate`. Check it with `certfleet --config DIR validate` and\n" +
	"# `certfleet --config DIR plan`; read the migration report for what needs a decision.\n"

func (c *Config) marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if len(c.Pending) > 0 {
		var p bytes.Buffer
		penc := yaml.NewEncoder(&p)
		penc.SetIndent(2)
		if err := penc.Encode(map[string]any{"certificates": c.Pending}); err != nil {
			return nil, err
		}
		buf.WriteString("\n# Certificates that need a decision before they can be enabled (see the report): add\n" +
			"# their bindings (`certfleet inventory DEVICE --suggest` shows where each is live), then move\n" +
			"# them under certificates: above.\n")
		for _, line := range bytes.Split(bytes.TrimRight(p.Bytes(), "\n"), []byte("\n")) {
			buf.WriteString("# ")
			buf.Write(line)
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes(), nil
}
