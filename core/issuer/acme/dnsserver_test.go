package acme

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
)

// testDNS is the simulator's authoritative DNS server for example.test on 127.0.0.1: it accepts
// RFC 2136 dynamic updates signed with its TSIG key only, which is how lego's rfc2136 provider
// publishes DNS-01 records, and it is the resolver Pebble's VA asks, so challenges are really
// validated.
type testDNS struct {
	*pebblesim.DNS
	addr string
}

const testZone = pebblesim.DNSZone

func startTestDNS() (*testDNS, error) {
	d, err := pebblesim.StartDNS()
	if err != nil {
		return nil, err
	}
	return &testDNS{DNS: d, addr: d.Addr()}, nil
}

// dnsSettings are the rfc2136 provider settings that reach this server.
func (s *testDNS) dnsSettings() map[string]string {
	key, secret := s.TSIG()
	return map[string]string{
		"nameserver":          s.addr,
		"tsig_algorithm":      pebblesim.TSIGAlgorithm,
		"tsig_key":            key,
		"tsig_secret":         secret,
		"propagation_timeout": "10",
		"polling_interval":    "0",
	}
}

func TestTestDNSRefusesUnsignedUpdates(t *testing.T) {
	t.Parallel()
	m := new(dns.Msg)
	m.SetUpdate(testZone)
	m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.unsigned.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"x"}}})
	r, err := dns.Exchange(m, dnsServer.addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeNotAuth {
		t.Fatalf("unsigned update answered %s, want NOTAUTH", dns.RcodeToString[r.Rcode])
	}
	if got := dnsServer.Records("_acme-challenge.unsigned.example.test."); len(got) != 0 {
		t.Fatalf("unsigned update applied: %v", got)
	}
}
