package main

import (
	"log/slog"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm"
)

func newSCMIssuer(name string, c *config.SCM, log *slog.Logger) (issuer.Issuer, error) {
	return scm.New(scmConfig(name, c), scm.WithLogger(log))
}

func scmConfig(name string, c *config.SCM) scm.Config {
	cfg := scm.Config{
		Name: name, API: c.API, BaseURL: c.BaseURL, CustomerURI: c.CustomerURI, Auth: c.Auth, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		TokenURL: c.TokenURL, Login: c.Login, Password: c.Password, OrgID: c.OrgID, CABundlePEM: c.TLS.CABundlePEM,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify, Timeout: c.Timeout, InitialDelay: c.InitialDelay,
	}
	if c.Lookup != nil {
		lookup := scmConfig(name, c.Lookup)
		cfg.Lookup = &lookup
	}
	return cfg
}
