// Command certfleet-plugin-brokenpemdir serves pemdir with the break CERTFLEET_BROKEN names; only
// the conformance suite's tests run it.
package main

import (
	"os"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance/internal/brokenpemdir"
)

func main() { sdk.Serve(brokenpemdir.New(os.Getenv("CERTFLEET_BROKEN"))) }
