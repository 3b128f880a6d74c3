// Command certfleet-plugin-f5-bigip is the F5 BIG-IP device plugin; certfleet launches it.
package main

import (
	f5bigip "github.com/certfleet/certfleet/plugins/f5-bigip"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func main() { sdk.Serve(f5bigip.New()) }
