// Command certfleet-plugin-paloalto-panos is the PAN-OS device plugin; certfleet launches it.
package main

import (
	paloaltopanos "github.com/certfleet/certfleet/plugins/paloalto-panos"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func main() { sdk.Serve(paloaltopanos.New()) }
