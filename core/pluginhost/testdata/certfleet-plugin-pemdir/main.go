// Command certfleet-plugin-pemdir here is the pemdir plugin speaking contract v2: a plugin of
// another major version, which the host must refuse with a clear error.
package main

import (
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func main() {
	sdk.Handshake.ProtocolVersion = sdk.ProtocolVersion + 1
	sdk.Serve(pemdir.New())
}
