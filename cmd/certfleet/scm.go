package main

import (
	"log/slog"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm"
)

func newSCMIssuer(name string, c *config.SCM, log *slog.Logger) (issuer.Issuer, error) {
	return scm.New(scm.Config{
		Name: name, BaseURL: c.BaseURL, CustomerURI: c.CustomerURI, Auth: c.Auth, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		TokenURL: c.TokenURL, Login: c.Login, Password: c.Password, OrgID: c.OrgID, CABundlePEM: c.TLS.CABundlePEM,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify, Timeout: c.Timeout,
	}, scm.WithLogger(log))
}
