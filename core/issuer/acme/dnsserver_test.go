package acme

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNS is an authoritative DNS server for the zone example.test on 127.0.0.1 (UDP and TCP on
// one port). It accepts RFC 2136 dynamic updates signed with its TSIG key only, which is how
// lego's rfc2136 provider publishes DNS-01 records, and it is the resolver Pebble's VA asks, so
// challenges are really validated.
type testDNS struct {
	addr       string
	tsigKey    string
	tsigSecret string

	mu      sync.Mutex
	txt     map[string][]string // lower-case FQDN → values
	updates map[string]int      // lower-case FQDN → accepted updates touching it
	dropped map[string]bool     // names whose updates are acknowledged but not applied (fault)
	servers []*dns.Server
}

const (
	testZone = "example.test."
	testNS   = "ns1.example.test."
)

func startTestDNS() (*testDNS, error) {
	s := &testDNS{
		tsigKey:    "certfleet-test.",
		tsigSecret: "Y2VydGZsZWV0LXRlc3QtdHNpZy1zZWNyZXQtMzItYnl0ZXMh",
		txt:        map[string][]string{},
		updates:    map[string]int{},
		dropped:    map[string]bool{},
	}
	// UDP and TCP on the same port; retry if the port the UDP socket got is taken for TCP.
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			_ = pc.Close()
			continue
		}
		s.addr = pc.LocalAddr().String()
		secrets := map[string]string{s.tsigKey: s.tsigSecret}
		udp := &dns.Server{PacketConn: pc, Handler: s, TsigSecret: secrets, MsgAcceptFunc: acceptQueriesAndUpdates}
		tcp := &dns.Server{Listener: l, Handler: s, TsigSecret: secrets, MsgAcceptFunc: acceptQueriesAndUpdates}
		s.servers = []*dns.Server{udp, tcp}
		for _, srv := range s.servers {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go func() { _ = srv.ActivateAndServe() }()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				return nil, fmt.Errorf("test DNS server did not start")
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("no free port for the test DNS server")
}

// acceptQueriesAndUpdates admits RFC 2136 updates, which miekg/dns refuses by default.
func acceptQueriesAndUpdates(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	switch int(dh.Bits>>11) & 0xF {
	case dns.OpcodeQuery, dns.OpcodeUpdate:
		return dns.MsgAccept
	}
	return dns.MsgRejectNotImplemented
}

func (s *testDNS) close() {
	for _, srv := range s.servers {
		_ = srv.Shutdown()
	}
}

// dropUpdatesFor makes updates for name succeed without effect (a provider that lies).
func (s *testDNS) dropUpdatesFor(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped[strings.ToLower(dns.Fqdn(name))] = true
}

func (s *testDNS) updateCount(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates[strings.ToLower(dns.Fqdn(name))]
}

func (s *testDNS) records(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.txt[strings.ToLower(dns.Fqdn(name))])
}

func (s *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	if r.Opcode == dns.OpcodeUpdate {
		s.update(w, r, m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	if !dns.IsSubDomain(testZone, name) {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
	}
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: testZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: testNS, Mbox: "hostmaster.example.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1}
	switch {
	case q.Qtype == dns.TypeSOA && name == testZone:
		m.Answer = append(m.Answer, soa)
	case q.Qtype == dns.TypeNS && name == testZone:
		m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: testNS})
	case q.Qtype == dns.TypeA && name == testNS:
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
	case q.Qtype == dns.TypeTXT:
		for _, v := range s.records(name) {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{v}})
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, soa) // NODATA
	}
	_ = w.WriteMsg(m)
}

func (s *testDNS) update(w dns.ResponseWriter, r, m *dns.Msg) {
	t := r.IsTsig()
	if t == nil || w.TsigStatus() != nil {
		m.Rcode = dns.RcodeNotAuth
		_ = w.WriteMsg(m)
		return
	}
	defer func() {
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		_ = w.WriteMsg(m)
	}()
	if strings.ToLower(r.Question[0].Name) != testZone {
		m.Rcode = dns.RcodeNotZone
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range r.Ns {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if !dns.IsSubDomain(testZone, name) {
			m.Rcode = dns.RcodeNotZone
			return
		}
		s.updates[name]++
		if s.dropped[name] {
			continue
		}
		txt, _ := rr.(*dns.TXT)
		switch {
		case h.Class == dns.ClassANY && h.Rrtype == dns.TypeTXT: // delete the RRset
			delete(s.txt, name)
		case h.Class == dns.ClassNONE && txt != nil: // delete one record
			v := strings.Join(txt.Txt, "")
			s.txt[name] = slices.DeleteFunc(s.txt[name], func(x string) bool { return x == v })
		case h.Class == dns.ClassINET && txt != nil: // add
			v := strings.Join(txt.Txt, "")
			if !slices.Contains(s.txt[name], v) {
				s.txt[name] = append(s.txt[name], v)
			}
		}
	}
}

// setTXT adds (or, with remove, deletes) a record directly, as a DNS hosting API would, and
// returns how many values the name holds afterwards.
func (s *testDNS) setTXT(name, value string, remove bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ToLower(dns.Fqdn(name))
	s.updates[name]++
	if remove {
		s.txt[name] = slices.DeleteFunc(s.txt[name], func(x string) bool { return x == value })
	} else if !slices.Contains(s.txt[name], value) {
		s.txt[name] = append(s.txt[name], value)
	}
	return len(s.txt[name])
}

// dnsSettings are the rfc2136 provider settings that reach this server.
func (s *testDNS) dnsSettings() map[string]string {
	return map[string]string{
		"nameserver":          s.addr,
		"tsig_algorithm":      "hmac-sha256.",
		"tsig_key":            s.tsigKey,
		"tsig_secret":         s.tsigSecret,
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
	if got := dnsServer.records("_acme-challenge.unsigned.example.test."); len(got) != 0 {
		t.Fatalf("unsigned update applied: %v", got)
	}
}
