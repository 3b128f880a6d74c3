// Command certfleet-plugin-citrix-nitro is the certfleet device plugin for Citrix ADC / NetScaler.
package main

import (
	citrixnitro "github.com/certfleet/certfleet/plugins/citrix-nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func main() { sdk.Serve(citrixnitro.New()) }
