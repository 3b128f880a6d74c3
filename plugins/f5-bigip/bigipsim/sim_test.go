package bigipsim_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
)

func handshake(addr string) (*tls.ConnectionState, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads what is served
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	return &st, nil
}

// TestListeners: each virtual server is a TLS listener serving its client-ssl profile; one
// without a client-ssl profile refuses TLS; Close stops them all.
func TestListeners(t *testing.T) {
	sim, err := bigipsim.New(bigipsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	st, err := handshake(sim.ServedAddress("vs_www"))
	if err != nil {
		t.Fatalf("vs_www (factory clientssl): %v", err)
	}
	if cn := st.PeerCertificates[0].Subject.CommonName; cn != "localhost.localdomain" {
		t.Errorf("vs_www serves %q, want the factory default certificate", cn)
	}
	if _, err := handshake(sim.ServedAddress("vs_api")); err == nil {
		t.Error("vs_api has no client-ssl profile but completed a TLS handshake")
	}
	if sim.ServedAddress("api_clientssl") != "" {
		t.Error("a profile no virtual server carries has a served address")
	}
	if err := sim.AddVirtual(bigipsim.VirtualSpec{Name: "vs_late", Profiles: []string{"/Common/tcp", "/Common/api_clientssl"}}); err != nil {
		t.Fatal(err)
	}
	if sim.ServedAddress("api_clientssl") != sim.ServedAddress("/Common/vs_late") || sim.ServedAddress("vs_late") == "" {
		t.Error("a virtual server added after Start has no listener, or its profile does not map to it")
	}
	if _, err := handshake(sim.ServedAddress("vs_late")); err != nil {
		t.Errorf("vs_late: %v", err)
	}
	addr := sim.ServedAddress("vs_www")
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(addr); err == nil {
		t.Error("a listener still answers after Close")
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]bigipsim.Config{
		"no users":          {},
		"missing profile":   {Users: []bigipsim.User{{Name: "a", Password: "b"}}, Virtuals: []bigipsim.VirtualSpec{{Name: "vs", Profiles: []string{"/Common/nope"}}}},
		"missing partition": {Users: []bigipsim.User{{Name: "a", Password: "b"}}, Virtuals: []bigipsim.VirtualSpec{{Name: "/Nope/vs"}}},
	} {
		if _, err := bigipsim.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
