// Command certfleet-plugin-skeleton is the template plugin; certfleet launches it.
package main

import (
	"github.com/certfleet/certfleet/plugins/sdk"
	skeleton "github.com/certfleet/certfleet/plugins/sdk/template/skeleton"
)

func main() { sdk.Serve(skeleton.New()) }
