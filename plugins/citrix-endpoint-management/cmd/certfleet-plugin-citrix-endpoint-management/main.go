// Command certfleet-plugin-citrix-endpoint-management is the Citrix Endpoint Management / XenMobile
// Server device plugin; certfleet launches it.
package main

import (
	cem "github.com/certfleet/certfleet/plugins/citrix-endpoint-management"
	"github.com/certfleet/certfleet/plugins/sdk"
	// Device TLS verifies where the host has no CA roots (the OCI image); a host's own roots win.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() { sdk.Serve(cem.New()) }
