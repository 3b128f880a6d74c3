package main

import (
	"fmt"

	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
)

const defaultCA = "scm"

// startSCM starts the Sectigo Certificate Manager simulator with an OAuth2 API client.
func startSCM(w *world, o options) error {
	cfg := scmsim.DefaultConfig()
	sim, err := scmsim.New(cfg)
	if err != nil {
		return err
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return err
	}
	w.closers = append(w.closers, sim.Close)
	sim.SetLatency(o.latency)
	bundle, err := w.writeFile("ca/scm-tls.pem", sim.TLSCACertPEM(), 0o600)
	if err != nil {
		return err
	}
	w.env["CERTFLEET_SIM_SCM_SECRET"] = cfg.Clients["certfleet-sim"]
	w.issuer = fmt.Sprintf(`  sim-ca:
    type: scm
    scm:
      base_url: %s
      token_url: %s
      client_id: certfleet-sim
      client_secret: ${env:CERTFLEET_SIM_SCM_SECRET}
      org_id: %d
      tls: {ca_bundle: %s}`, sim.URL(), sim.TokenURL(), cfg.OrgIDs[0], bundle)
	w.issuerOptions = "{cert_type: OV SSL, term: 365}"
	w.info.CA = caInfo{Type: "scm", URL: sim.URL()}
	w.info.RootsPEM = append(w.info.RootsPEM, sim.RootPEM())
	return nil
}
