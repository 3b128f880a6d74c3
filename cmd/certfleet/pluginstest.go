package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// qualificationTarget is the --target file of `certfleet plugins test`: a lab device the suite may
// change (it creates its own objects and binds them only to the bindings listed).
type qualificationTarget struct {
	Address string `yaml:"address"`
	TLS     struct {
		InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
		CABundle           string `yaml:"ca_bundle"`
		ServerName         string `yaml:"server_name"`
	} `yaml:"tls"`
	Credentials struct {
		Username string `yaml:"username"`
		Password string `yaml:"password"`
		APIKey   string `yaml:"api_key"`
		Token    string `yaml:"token"`
	} `yaml:"credentials"`
	Options        map[string]any `yaml:"options"`
	Bindings       []yamlBinding  `yaml:"bindings"`
	UnknownBinding *yamlBinding   `yaml:"unknown_binding"`
	KeySpecs       []struct {
		Type string `yaml:"type"`
		Bits int    `yaml:"bits"`
	} `yaml:"key_specs"`
	Unsupported []string      `yaml:"unsupported"`
	CallTimeout time.Duration `yaml:"call_timeout"`
}

type yamlBinding struct {
	Kind    string         `yaml:"kind"`
	Name    string         `yaml:"name"`
	SNI     bool           `yaml:"sni"`
	Options map[string]any `yaml:"options"`
}

func (b yamlBinding) binding() sdk.Binding {
	return sdk.Binding{Kind: b.Kind, Name: b.Name, SNI: b.SNI, Options: b.Options}
}

// resolveRef reads ${env:NAME} and ${file:PATH}; anything else is taken as written.
func resolveRef(file, field, v string) (string, error) {
	if !strings.HasPrefix(v, "${") || !strings.HasSuffix(v, "}") {
		return v, nil
	}
	kind, arg, _ := strings.Cut(v[2:len(v)-1], ":")
	switch kind {
	case "env":
		s, ok := os.LookupEnv(arg)
		if !ok {
			return "", fmt.Errorf("%s: %s: environment variable %s is not set", file, field, arg)
		}
		return s, nil
	case "file":
		data, err := os.ReadFile(arg)
		if err != nil {
			return "", fmt.Errorf("%s: %s: %w", file, field, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return "", fmt.Errorf("%s: %s: %q: use ${env:NAME} or ${file:PATH}", file, field, v)
}

// loadQualificationTarget reads the --target file into a suite configuration for pluginPath.
func loadQualificationTarget(path, pluginPath string) (conformance.Config, error) {
	var cfg conformance.Config
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	var qt qualificationTarget
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&qt); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if qt.Address == "" {
		return cfg, fmt.Errorf("%s: address: required (the device's management address, as the plugin documents it)", path)
	}
	if len(qt.Bindings) == 0 {
		return cfg, fmt.Errorf("%s: bindings: list at least one place on the lab device the suite may bind test certificates to (two to check partial rollback)", path)
	}
	t := sdk.Target{Name: "qualification", Address: qt.Address, Options: qt.Options,
		TLS: sdk.TLSConfig{InsecureSkipVerify: qt.TLS.InsecureSkipVerify, ServerName: qt.TLS.ServerName}}
	if qt.TLS.CABundle != "" {
		ca, err := os.ReadFile(qt.TLS.CABundle)
		if err != nil {
			return cfg, fmt.Errorf("%s: tls.ca_bundle: %w", path, err)
		}
		t.TLS.CABundlePEM = string(ca)
	}
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{
		{"credentials.username", qt.Credentials.Username, &t.Credentials.Username},
		{"credentials.password", qt.Credentials.Password, &t.Credentials.Password},
		{"credentials.api_key", qt.Credentials.APIKey, &t.Credentials.APIKey},
		{"credentials.token", qt.Credentials.Token, &t.Credentials.Token},
	} {
		if *f.out, err = resolveRef(path, f.name, f.in); err != nil {
			return cfg, err
		}
	}
	cfg = conformance.Config{PluginPath: pluginPath, Target: t, CallTimeout: qt.CallTimeout}
	for i, u := range qt.Unsupported {
		f, err := conformance.ParseFeature(u)
		if err != nil {
			return cfg, fmt.Errorf("%s: unsupported[%d]: %w", path, i, err)
		}
		cfg.Unsupported = append(cfg.Unsupported, f)
	}
	if !slicesContains(cfg.Unsupported, conformance.FeatureAuthentication) {
		bad := t
		// Every secret set is replaced, so the device must refuse the login.
		for _, s := range []*string{&bad.Credentials.Password, &bad.Credentials.APIKey, &bad.Credentials.Token} {
			if *s != "" {
				*s = "certfleet-conformance-wrong-" + fmt.Sprint(time.Now().UnixNano())
			}
		}
		cfg.BadCredentials = &bad
	}
	for _, b := range qt.Bindings {
		cfg.Bindings = append(cfg.Bindings, b.binding())
	}
	cfg.UnknownBinding = sdk.Binding{Kind: qt.Bindings[0].Kind, Name: "certfleet-conformance-no-such-object"}
	if qt.UnknownBinding != nil {
		cfg.UnknownBinding = qt.UnknownBinding.binding()
	}
	for i, k := range qt.KeySpecs {
		spec := sdk.KeySpec{Bits: k.Bits}
		switch k.Type {
		case "rsa":
			spec.Type = sdk.KeyTypeRSA
		case "ecdsa", "ec":
			spec.Type = sdk.KeyTypeECDSA
		}
		if !spec.Valid() {
			return cfg, fmt.Errorf("%s: key_specs[%d]: %s-%d is not a key the contract allows (rsa 2048/3072/4096, ecdsa 256/384/521)", path, i, k.Type, k.Bits)
		}
		cfg.KeySpecs = append(cfg.KeySpecs, spec)
	}
	return cfg, nil
}

func slicesContains(fs []conformance.Feature, f conformance.Feature) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

// pluginsTest qualifies an installed plugin against a lab device, without a Go toolchain.
func pluginsTest(c *cli.Context) error {
	if err := checkOutputFlag(c); err != nil {
		return err
	}
	if c.NArg() != 1 || c.String("target") == "" {
		return cli.Exit("usage: certfleet plugins test --target FILE NAME", 2)
	}
	host, _, err := hostForCommand(c, false)
	if err != nil {
		return err
	}
	defer host.Close()
	// Through the host, so the binary is the pinned one.
	p, err := host.Plugin(c.Args().First())
	if err != nil {
		return err
	}
	cfg, err := loadQualificationTarget(c.String("target"), p.Path())
	if err != nil {
		return cli.Exit("plugins test: "+err.Error(), 2)
	}
	report := conformance.Qualify(c.Context, cfg)
	if c.String("output") == "json" {
		if err := writeJSON(c, report); err != nil {
			return err
		}
	} else {
		w := c.App.Writer
		counts := map[conformance.Outcome]int{}
		for _, r := range report.Results {
			counts[r.Outcome]++
			line := fmt.Sprintf("%-7s %s", strings.ToUpper(string(r.Outcome)), r.Check)
			if r.Outcome != conformance.Passed && len(r.Messages) > 0 {
				line += ": " + strings.Join(r.Messages, "; ")
			}
			fmt.Fprintln(w, line)
		}
		fmt.Fprintf(w, "\n%s against %s: %d passed, %d skipped, %d failed\n", c.Args().First(), cfg.Target.Address,
			counts[conformance.Passed], counts[conformance.Skipped], counts[conformance.Failed])
	}
	if report.Failed() {
		return cli.Exit("", 1)
	}
	return nil
}
