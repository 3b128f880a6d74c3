package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/issuer/acme"
	"github.com/certfleet/certfleet/core/issuer/scm"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/urfave/cli/v2"
)

func cfgIsFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name: "validate",
		Usage: "check the configuration: syntax, references, issuer options, and key specs, binding kinds and options " +
			"against each plugin's declared capabilities (no device or CA is contacted, no secret is resolved)",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "offline", Usage: "check only the files: start no plugin (for editors and CI without the plugins)"}},
		Action: func(c *cli.Context) error {
			log := newLogger(c)
			cfg, err := loadConfig(c.Context, c.String("config"), nil, false, log)
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			checked := "plugins not started (--offline)"
			if !c.Bool("offline") {
				// Only GetInfo is called, and nothing is pinned: validate changes nothing.
				host := newPluginHost(c, log, cfg, true)
				defer host.Close()
				infos := pluginInfos(c.Context, cfg, func(name string) (sdk.Plugin, error) { return host.Plugin(name) })
				if err := checkConfigAgainstPlugins(cfg, infos); err != nil {
					return cli.Exit(err.Error(), 2)
				}
				checked = fmt.Sprintf("checked against %d plugin(s)", len(infos))
			}
			fmt.Fprintf(c.App.Writer, "configuration OK: %d certificates, %d devices, %d issuers, %s (%s)\n",
				len(cfg.Certificates), len(cfg.Devices), len(cfg.Issuers), checked, strings.Join(cfg.Files, ", "))
			return nil
		},
	}
}

// pluginInfo is one plugin's GetInfo answer, or why it could not be had.
type pluginInfo struct {
	info sdk.Info
	err  error
}

// pluginInfos asks every plugin the configuration uses for its GetInfo (which needs no device).
func pluginInfos(ctx context.Context, cfg *config.Config, get func(string) (sdk.Plugin, error)) map[string]pluginInfo {
	out := map[string]pluginInfo{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	started := map[string]bool{}
	for _, d := range cfg.Devices {
		if started[d.Plugin] {
			continue
		}
		started[d.Plugin] = true
		name := d.Plugin
		// Each plugin starts in its own process: a configuration of four vendors waits for the
		// slowest start, not the sum.
		wg.Go(func() {
			pi := pluginInfo{}
			if p, err := get(name); err != nil {
				pi.err = err
			} else {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				pi.info, pi.err = p.Info(cctx)
				cancel()
			}
			mu.Lock()
			out[name] = pi
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// validateIssuerOptions checks options against the issuer's type offline (defaults merged in).
func validateIssuerOptions(iss *config.Issuer, opts map[string]any) error {
	switch iss.Type {
	case "scm":
		api := ""
		if iss.SCM != nil {
			api = iss.SCM.API
		}
		return scm.ValidateOptions(api, opts)
	case "acme":
		return acme.ValidateOptions(opts)
	}
	return nil
}

// checkConfigAgainstPlugins checks what the files alone cannot say: each certificate's issuer
// options against its issuer type, its key spec and binding kinds against its plugin's declared
// capabilities, and device and binding options against the plugin's option specs (names and
// types). It needs no network and no secret.
func checkConfigAgainstPlugins(cfg *config.Config, infos map[string]pluginInfo) error {
	errs := &config.Errors{}
	devNames := make([]string, 0, len(cfg.Devices))
	for n := range cfg.Devices {
		devNames = append(devNames, n)
	}
	sort.Strings(devNames)
	for _, name := range devNames {
		d := cfg.Devices[name]
		pi := infos[d.Plugin]
		if pi.err != nil {
			errs.Add(d.Position, "devices."+name+".plugin", pi.err.Error(), "install certfleet-plugin-"+d.Plugin+" in a plugin directory (certfleet plugins list), or use --offline")
			continue
		}
		checkOptions(errs, d.Position, "devices."+name+".options", d.Options, pi.info.Capabilities.TargetOptions, d.Plugin)
	}
	// Certificates mostly share their issuer options (those of defaults): a map is checked once
	// against each issuer.
	type optionsOf struct {
		issuer  *config.Issuer
		options uintptr
	}
	optionErrs := map[optionsOf]error{}
	for _, nc := range sortedCertificates(cfg) {
		name, c := nc.name, nc.Certificate
		if !c.Enabled {
			continue
		}
		if iss, ok := cfg.Issuers[c.Issuer]; ok {
			key := optionsOf{iss, reflect.ValueOf(c.IssuerOptions).Pointer()}
			err, checked := optionErrs[key]
			if !checked {
				err = validateIssuerOptions(iss, c.IssuerOptions)
				optionErrs[key] = err
			}
			if err != nil {
				errs.Add(c.Position, "certificates."+name+".issuer_options", err.Error(), "issuer "+c.Issuer+" is of type "+iss.Type+"; defaults.issuer_options are merged in")
			}
		}
		dev, ok := cfg.Devices[c.Device]
		if !ok {
			continue
		}
		pi := infos[dev.Plugin]
		if pi.err != nil {
			continue
		}
		caps := pi.info.Capabilities
		if !caps.SupportsKey(c.Key) {
			errs.Add(c.Position, "certificates."+name+".key", fmt.Sprintf("plugin %s cannot make %s keys", dev.Plugin, c.Key), "supported: "+formatKeySpecs(caps.KeySpecs))
		}
		for i, b := range c.Bindings {
			bpath := func() string { return fmt.Sprintf("certificates.%s.bindings[%d]", name, i) } // for messages only
			if !caps.SupportsBinding(b.Kind) {
				errs.Add(c.BindingPositions[i], bpath()+".kind", fmt.Sprintf("plugin %s has no binding kind %q", dev.Plugin, b.Kind), "kinds: "+strings.Join(caps.BindingKinds, ", "))
			}
			if len(b.Options) > 0 {
				checkOptions(errs, c.BindingPositions[i], bpath()+".options", b.Options, caps.BindingOptions, dev.Plugin)
			}
		}
	}
	return errs.Err()
}

// checkOptions checks option names and value types against a plugin's option specs.
func checkOptions(errs *config.Errors, pos config.Position, path string, opts sdk.Options, specs []sdk.OptionSpec, plugin string) {
	byName := map[string]sdk.OptionSpec{}
	known := make([]string, 0, len(specs))
	for _, s := range specs {
		byName[s.Name] = s
		known = append(known, s.Name)
	}
	sort.Strings(known)
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		spec, ok := byName[k]
		if !ok {
			hint := "plugin " + plugin + " takes no options here"
			if len(known) > 0 {
				hint = "known: " + strings.Join(known, ", ")
			}
			errs.Add(pos, path+"."+k, fmt.Sprintf("plugin %s has no option %q", plugin, k), hint)
			continue
		}
		if !optionTypeMatches(spec.Type, opts[k]) {
			errs.Add(pos, path+"."+k, fmt.Sprintf("must be a %s, not %T", spec.Type, opts[k]), spec.Description)
		}
	}
}

func optionTypeMatches(want string, v any) bool {
	switch want {
	case "string":
		_, ok := v.(string)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "number":
		switch v.(type) {
		case int, int64, uint64, float64:
			return true
		}
		return false
	case "list":
		_, ok := v.([]any)
		return ok
	}
	return true // a type this core does not know: the plugin checks it
}
