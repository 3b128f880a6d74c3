// Command certfleet-plugin-pemdir is the pemdir device plugin; certfleet launches it.
package main

import (
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func main() { sdk.Serve(pemdir.New()) }
