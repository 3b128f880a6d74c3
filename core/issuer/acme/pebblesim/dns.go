package pebblesim

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DNSZone is the zone the simulated DNS server is authoritative for; every simulated device
// name lies in it.
const DNSZone = "example.test."

// dnsNS is the zone's name server (itself, on 127.0.0.1).
const dnsNS = "ns1.example.test."

// TSIGAlgorithm is the TSIG algorithm the server's key uses (RFC 8945 §6: hmac-sha256 is
// mandatory to implement).
const TSIGAlgorithm = dns.HmacSHA256

// DNS is an authoritative DNS server for DNSZone on 127.0.0.1 (UDP and TCP on one port), the
// resolver Pebble's VA asks when challenges are validated:
//   - DNS-01 (RFC 8555 §8.4): TXT records under _acme-challenge, published by RFC 2136 dynamic
//     updates signed with the server's TSIG key (RFC 8945), as lego's rfc2136 provider and
//     certbot's dns-rfc2136 plugin send them; unsigned updates are refused (NOTAUTH).
//   - HTTP-01 (RFC 8555 §8.3): every name in the zone has the A record 127.0.0.1, so the VA
//     fetches the token from the client's listener on loopback. No AAAA records: Pebble's VA asks
//     for AAAA first and uses an IPv6 address when there is one (va.resolveIP).
type DNS struct {
	addr       string
	tsigKey    string
	tsigSecret string

	mu      sync.Mutex
	txt     map[string][]string // lower-case FQDN → values
	updates map[string]int      // lower-case FQDN → accepted updates touching it
	dropped map[string]bool     // names whose updates are acknowledged but not applied (fault)
	txtWait time.Duration       // delay before every TXT answer (fault)
	servers []*dns.Server
}

// StartDNS starts a DNS server on a free loopback port, with a fresh TSIG key.
func StartDNS() (*DNS, error) {
	s := &DNS{
		tsigKey:    "certfleet-sim.",
		tsigSecret: base64.StdEncoding.EncodeToString(randomBytes(32)),
		txt:        map[string][]string{},
		updates:    map[string]int{},
		dropped:    map[string]bool{},
	}
	// UDP and TCP on the same port (Pebble's VA asks over TCP, lego's providers over UDP); retry
	// if the port the UDP socket got is taken for TCP.
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("simulated DNS: %w", err)
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
				s.Close()
				return nil, errors.New("simulated DNS server did not start")
			}
		}
		return s, nil
	}
	return nil, errors.New("simulated DNS: no free port for UDP and TCP")
}

// acceptQueriesAndUpdates admits RFC 2136 updates, which miekg/dns refuses by default (its
// DefaultMsgAcceptFunc accepts only OpcodeQuery and OpcodeNotify).
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

// Addr is the server's "127.0.0.1:port".
func (s *DNS) Addr() string { return s.addr }

// TSIG returns the key name and base64 secret that sign updates (algorithm TSIGAlgorithm).
func (s *DNS) TSIG() (key, secret string) { return s.tsigKey, s.tsigSecret }

// Close stops the server.
func (s *DNS) Close() {
	for _, srv := range s.servers {
		_ = srv.Shutdown()
	}
}

// DropUpdatesFor makes updates for name succeed without effect (a provider that lies).
func (s *DNS) DropUpdatesFor(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped[strings.ToLower(dns.Fqdn(name))] = true
}

// DelayTXTAnswers makes every TXT answer wait d (a slow or distant name server), so that a CA's
// DNS-01 validation takes at least d.
func (s *DNS) DelayTXTAnswers(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txtWait = d
}

// UpdateCount is how many accepted updates touched name.
func (s *DNS) UpdateCount(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates[strings.ToLower(dns.Fqdn(name))]
}

// Records are name's TXT values.
func (s *DNS) Records(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.txt[strings.ToLower(dns.Fqdn(name))])
}

// SetTXT adds (or, with remove, deletes) a record directly, as a DNS hosting API would, and
// returns how many values the name holds afterwards.
func (s *DNS) SetTXT(name, value string, remove bool) int {
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

// ServeDNS answers queries for the zone and applies signed updates.
func (s *DNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
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
	if !dns.IsSubDomain(DNSZone, name) {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
	}
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: DNSZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: dnsNS, Mbox: "hostmaster." + DNSZone, Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1}
	challenge := strings.HasPrefix(name, "_acme-challenge.")
	switch {
	case q.Qtype == dns.TypeSOA && name == DNSZone:
		m.Answer = append(m.Answer, soa)
	case q.Qtype == dns.TypeNS && name == DNSZone:
		m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: dnsNS})
	case q.Qtype == dns.TypeA && !challenge:
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
	case q.Qtype == dns.TypeTXT:
		s.mu.Lock()
		wait := s.txtWait
		s.mu.Unlock()
		time.Sleep(wait)
		for _, v := range s.Records(name) {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{v}})
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, soa) // NODATA (RFC 2308 §2.2)
	}
	_ = w.WriteMsg(m)
}

// update applies an RFC 2136 update: the zone section names DNSZone (§2.3, else NOTZONE), and
// each update RR adds a record (class IN), deletes an RRset (class ANY) or deletes one record
// (class NONE) (§2.5.1–§2.5.4). Only TSIG-signed updates are applied (RFC 8945 §5.2: a request
// that fails verification is answered NOTAUTH).
func (s *DNS) update(w dns.ResponseWriter, r, m *dns.Msg) {
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
	if strings.ToLower(r.Question[0].Name) != DNSZone {
		m.Rcode = dns.RcodeNotZone
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range r.Ns {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if !dns.IsSubDomain(DNSZone, name) {
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
