// Command certfleet-plugin-citrix-nitro is the certfleet device plugin for Citrix ADC / NetScaler.
package main

import (
	citrixnitro "github.com/certfleet/certfleet/plugins/citrix-nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
	// Device TLS verifies where the host has no CA roots (the OCI image); a host's own roots win.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() { sdk.Serve(citrixnitro.New()) }
