// Command certfleet-plugin-paloalto-panos is the PAN-OS device plugin; certfleet launches it.
package main

import (
	paloaltopanos "github.com/certfleet/certfleet/plugins/paloalto-panos"
	"github.com/certfleet/certfleet/plugins/sdk"
	// Device TLS verifies where the host has no CA roots (the OCI image); a host's own roots win.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() { sdk.Serve(paloaltopanos.New()) }
