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
	p, err := pebblesim.Start(pebblesim.Config{ValidityDays: 90, Latency: o.latency, Challenges: o.acmeChallenges, VASleep: o.acmeVASleep})
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
	w.info.CA = caInfo{Type: "acme", URL: p.DirectoryURL(), Settings: p.Settings()}
	if d := p.DNS(); d != nil {
		// DNS-01 through lego's rfc2136 provider, signed with the simulator's TSIG key. The
		// simulated server is the zone's only name server, on a port other than 53, so the
		// propagation check asks it as the resolver (propagation_check: resolvers).
		key, secret := d.TSIG()
		w.env["CERTFLEET_SIM_TSIG_SECRET"] = secret
		w.issuer += fmt.Sprintf(`
      dns:
        provider: rfc2136
        settings: {nameserver: "%s", tsig_algorithm: %s, tsig_key: %s, tsig_secret: "${env:CERTFLEET_SIM_TSIG_SECRET}"}
        resolvers: ["%s"]
        propagation_check: resolvers`, d.Addr(), pebblesim.TSIGAlgorithm, key, d.Addr())
		w.info.CA.Challenges = &challengeInfo{DNSServer: d.Addr(), TSIGKey: key, TSIGAlgorithm: pebblesim.TSIGAlgorithm, HTTP01Port: p.HTTP01Port()}
	}
	w.info.RootsPEM = append(w.info.RootsPEM, root)
	return nil
}
