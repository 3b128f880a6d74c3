// Command certfleet-plugin-citrix-endpoint-management is the Citrix Endpoint Management / XenMobile
// Server device plugin; certfleet launches it.
package main

import (
	cem "github.com/certfleet/certfleet/plugins/citrix-endpoint-management"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func main() { sdk.Serve(cem.New()) }
