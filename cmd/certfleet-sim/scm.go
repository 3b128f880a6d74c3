package main

import (
	"fmt"
	"strings"

	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
)

const defaultCA = "scm"

// startSCM starts the Sectigo Certificate Manager simulator with an Admin API OAuth2 client and a
// REST Enrollment account; the configuration uses the API --scm-api names.
func startSCM(w *world, o options) error {
	cfg := scmsim.DefaultConfig()
	cfg.PendingCollects = o.scmPendingCollects
	sim, err := scmsim.New(cfg)
	if err != nil {
		return err
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return err
	}
	w.closers = append(w.closers, sim.Close)
	sim.SetLatency(o.latency)
	w.caRequests = sim.Requests
	bundle, err := w.writeFile("ca/scm-tls.pem", sim.TLSCACertPEM(), 0o600)
	if err != nil {
		return err
	}
	w.env["CERTFLEET_SIM_SCM_SECRET"] = cfg.Clients["certfleet-sim"]
	admin := fmt.Sprintf(`      base_url: %s
      token_url: %s
      client_id: certfleet-sim
      client_secret: ${env:CERTFLEET_SIM_SCM_SECRET}
      org_id: %d
      tls: {ca_bundle: %s}`, sim.URL(), sim.TokenURL(), cfg.OrgIDs[0], bundle)
	if o.scmAPI == "enrollment" {
		w.env["CERTFLEET_SIM_SCM_REST_SECRET"] = cfg.EnrollAccounts["certfleet-sim-rest"].Secret
		w.issuer = fmt.Sprintf(`  sim-ca:
    type: scm
    scm:
      api: enrollment
      base_url: %s
      token_url: %s
      client_id: certfleet-sim-rest
      client_secret: ${env:CERTFLEET_SIM_SCM_REST_SECRET}
      tls: {ca_bundle: %s}
      lookup:
%s`, sim.EnrollURL(), sim.TokenURL(), bundle, indent(admin, "  "))
		w.issuerOptions = ""
		w.info.CA = caInfo{Type: "scm", URL: sim.EnrollURL()}
	} else {
		w.issuer = "  sim-ca:\n    type: scm\n    scm:\n" + admin
		w.issuerOptions = "{cert_type: OV SSL}"
		w.info.CA = caInfo{Type: "scm", URL: sim.URL()}
	}
	w.info.RootsPEM = append(w.info.RootsPEM, sim.RootPEM())
	return nil
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
