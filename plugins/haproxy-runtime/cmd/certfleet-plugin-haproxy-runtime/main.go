// Command certfleet-plugin-haproxy-runtime is the HAProxy Runtime API plugin; certfleet launches it.
package main

import (
	haproxyruntime "github.com/certfleet/certfleet/plugins/haproxy-runtime"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func main() { sdk.Serve(haproxyruntime.New()) }
