package main

import (
	"fmt"

	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
)

func startCA(w *world, o options) error {
	switch o.ca {
	case "acme":
		return startPebble(w, o)
	case "scm":
		return startSCM(w, o)
	}
	return fmt.Errorf("unknown CA %q", o.ca)
}

func startPebble(w *world, o options) error {
	p, err := pebblesim.Start(pebblesim.Config{ValidityDays: 90, Latency: o.latency})
	if err != nil {
		return err
	}
	w.closers = append(w.closers, p.Close)
	w.caRequests = p.Requests
	bundle, err := w.writeFile("ca/acme-tls.pem", p.TLSCACertPEM(), 0o600)
	if err != nil {
		return err
	}
	root, err := p.RootPEM()
	if err != nil {
		return err
	}
	kid, hmac := p.EAB()
	w.env["CERTFLEET_SIM_EAB_HMAC"] = hmac
	w.issuer = fmt.Sprintf(`  sim-ca:
    type: acme
    acme:
      directory_url: %s
      eab: {key_id: %s, hmac_key: "${env:CERTFLEET_SIM_EAB_HMAC}"}
      contact: ops@example.test
      tls: {ca_bundle: %s}`, p.DirectoryURL(), kid, bundle)
	w.info.CA = caInfo{Type: "acme", URL: p.DirectoryURL(), Settings: pebblesim.Settings()}
	w.info.RootsPEM = append(w.info.RootsPEM, root)
	return nil
}
