package sdk_test

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// A plugin's main package is one line: Serve runs the plugin until the core ends it.
func ExampleServe() {
	var impl sdk.Plugin // your implementation, e.g. acme.New()
	if impl != nil {
		sdk.Serve(impl)
	}
}

// Errors carry a gRPC code the core acts on (Unavailable is retried, InvalidArgument is not), a
// machine-readable reason, and the device's own code and message.
func ExampleError() {
	err := sdk.UnknownBinding("the appliance has no lbvserver named %q", "vs_shop_443").
		WithVendor("258", "No such resource")
	fmt.Println(sdk.CodeOf(err), sdk.AsError(err).Reason, sdk.IsRetryable(err))
	fmt.Println(err)
	// Output:
	// NotFound UNKNOWN_BINDING false
	// the appliance has no lbvserver named "vs_shop_443" (device error 258: No such resource)
}

// FromContext turns the end of a call's context into the contract's error: return it when a wait
// or a request was cut short by the core's deadline.
func ExampleFromContext() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := sdk.FromContext(ctx)
	fmt.Println(err.Code, err.Reason, sdk.IsRetryable(err))
	// Output: Canceled CANCELED false
}

// Options reads vendor options with a default, and names the option in a type error.
func ExampleOptions() {
	opts := sdk.Options{"partition": "Common", "links": []any{"www", "api"}, "port": "443"}
	partition, _ := opts.String("partition", "Common")
	links, _ := opts.StringList("links")
	_, err := opts.Int("port", 443)
	fmt.Println(partition, links)
	fmt.Println(err)
	fmt.Println(opts.Unknown([]sdk.OptionSpec{{Name: "partition"}, {Name: "links"}}))
	// Output:
	// Common [www api]
	// option "port" must be a number, got string
	// [port]
}

// Credentials never print their secrets, with %v, %+v or %#v.
func ExampleCredentials() {
	c := sdk.Credentials{Username: "certfleet", Password: "s3cret"}
	fmt.Printf("%v\n", c)
	// Output: {username:"certfleet" password:set api_key:unset token:unset}
}

// Capabilities answer the questions the core asks before it calls a plugin.
func ExampleCapabilities() {
	caps := sdk.Capabilities{
		KeySpecs:     []sdk.KeySpec{{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeECDSA, Bits: 256}},
		BindingKinds: []string{"vip"},
	}
	fmt.Println(caps.SupportsKey(sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 384}), caps.SupportsBinding("vip"))
	// Output: false true
}
