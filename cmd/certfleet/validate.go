package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/issuer"
	"github.com/urfave/cli/v2"
)

func cfgIsFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:  "validate",
		Usage: "check the configuration (nothing is contacted, no secret is resolved)",
		Action: func(c *cli.Context) error {
			log := newLogger(c)
			cfg, err := loadConfig(c.Context, c.String("config"), nil, false, log)
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			fmt.Fprintf(c.App.Writer, "configuration OK: %d certificates, %d devices, %d issuers (%s)\n",
				len(cfg.Certificates), len(cfg.Devices), len(cfg.Issuers), strings.Join(cfg.Files, ", "))
			return nil
		},
	}
}

// checkAgainstPlugins checks what only the plugins and issuers know: each certificate's key spec
// and binding kinds against its device's plugin, and its issuer options against its issuer.
func checkAgainstPlugins(ctx context.Context, env *environment, issuers map[string]issuer.Issuer) error {
	errs := &config.Errors{}
	names := make([]string, 0, len(env.cfg.Certificates))
	for n := range env.cfg.Certificates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := env.cfg.Certificates[name]
		if !c.Enabled {
			continue
		}
		path := "certificates." + name
		if iss, ok := issuers[c.Issuer]; ok {
			if err := iss.ValidateOptions(c.IssuerOptions); err != nil {
				errs.Add(c.Position, path+".issuer_options", err.Error(), "")
			}
		}
		dev := env.cfg.Devices[c.Device]
		p, err := env.host.Plugin(dev.Plugin)
		if err != nil {
			errs.Add(dev.Position, "devices."+c.Device+".plugin", err.Error(), "")
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		info, err := p.Info(cctx)
		cancel()
		if err != nil {
			errs.Add(dev.Position, "devices."+c.Device+".plugin", env.redactor.Redact(err.Error()), "")
			continue
		}
		if !info.Capabilities.SupportsKey(c.Key) {
			errs.Add(c.Position, path+".key", fmt.Sprintf("plugin %s cannot make %s keys", dev.Plugin, c.Key),
				"supported: "+formatKeySpecs(info.Capabilities.KeySpecs))
		}
		for i, b := range c.Bindings {
			if !info.Capabilities.SupportsBinding(b.Kind) {
				errs.Add(c.BindingPositions[i], fmt.Sprintf("%s.bindings[%d].kind", path, i),
					fmt.Sprintf("plugin %s has no binding kind %q", dev.Plugin, b.Kind), "kinds: "+strings.Join(info.Capabilities.BindingKinds, ", "))
			}
		}
	}
	return errs.Err()
}
