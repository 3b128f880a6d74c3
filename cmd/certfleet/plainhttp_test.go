package main

import (
	"testing"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// TestPlainHTTPOptInReachesOnlyItsDevice: a device's allow_plain_http becomes its target option,
// without changing the configured options of it or of any other device.
func TestPlainHTTPOptInReachesOnlyItsDevice(t *testing.T) {
	own := sdk.Options{"partition": "p1"}
	cfg := &config.Config{Devices: map[string]*config.Device{
		"adc":  {Plugin: "citrix-nitro", Address: "http://adc.example", AllowPlainHTTP: true, Options: own},
		"web1": {Plugin: "pemdir", Address: "/srv/tls", Options: sdk.Options{}},
	}}
	devs := engineDevices(cfg)
	if got := devs["adc"].Target.Options; got["allow_plain_http"] != true || got["partition"] != "p1" {
		t.Errorf("adc options %v", got)
	}
	if _, set := own["allow_plain_http"]; set {
		t.Error("the configured options were changed")
	}
	if _, set := devs["web1"].Target.Options["allow_plain_http"]; set {
		t.Error("another device got the opt-in")
	}
}
