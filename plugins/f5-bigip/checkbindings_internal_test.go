package f5bigip

import "testing"

// The destinations are strings as a BIG-IP lists them (10.1.1.1 included): parsed only, never dialled.
func TestDestinationAddress(t *testing.T) {
	for in, want := range map[string]string{
		"/Common/127.0.0.1:8443":     "127.0.0.1:8443",
		"/Tenant1/10.1.1.1%2:443":    "10.1.1.1:443",
		"/Common/2001:db8::1.443":    "[2001:db8::1]:443",
		"/Common/0.0.0.0:any":        "",
		"/Common/10.1.1.1:0":         "",
		"/Common/address-list-no-po": "",
	} {
		if got := destinationAddress(in); got != want {
			t.Errorf("destinationAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
