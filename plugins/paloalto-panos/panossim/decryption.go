package panossim

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

// SSL Inbound Inspection decryption rules hold the certificates (with keys) of the servers they
// protect: <vsys>/rulebase/decryption/rules/entry[@name=R]/type/ssl-inbound-inspection/
// certificates/member, a list since PAN-OS 10.2 (pango v2 policies/rules/decryption,
// pan-os-codegen). Older releases held a single certificate name as the text of
// ssl-inbound-inspection [UNCONFIRMED]; the simulator models the list form only.

// DecryptionRuleSpec is an SSL Inbound Inspection decryption rule made at start.
type DecryptionRuleSpec struct {
	Name string
	// Vsys is vsys1 when empty.
	Vsys string
	// Certificates are the names of the certificates the rule decrypts with.
	Certificates []string
}

const maxRuleName = 63 // [UNCONFIRMED] limit for rule names

func decryptionRuleSchema() *schema {
	return container(true, map[string]*schema{
		"decryption": container(true, map[string]*schema{
			"rules": list(maxRuleName, true, map[string]*schema{
				"type": container(false, map[string]*schema{
					"ssl-inbound-inspection": container(false, map[string]*schema{
						"certificates": container(false, map[string]*schema{"member": leafSchema()}),
					}),
					"ssl-forward-proxy": container(true, nil),
					"ssh-proxy":         container(true, nil),
				}),
			}),
		}),
	})
}

func (s *Sim) addDecryptionRule(spec DecryptionRuleSpec) error {
	vsys := spec.Vsys
	if vsys == "" {
		vsys = "vsys1"
	}
	loc := location(s.candidate, vsys)
	if loc == nil {
		return fmt.Errorf("panossim: decryption rule %q: no vsys %q", spec.Name, vsys)
	}
	certs := elem("certificates")
	for _, c := range spec.Certificates {
		certs.children = append(certs.children, leaf("member", c))
	}
	putEntry(loc.ensure("rulebase").ensure("decryption").ensure("rules"),
		entry(spec.Name, leaf("action", "decrypt"), elem("type", elem("ssl-inbound-inspection", certs))))
	return nil
}

// AddDecryptionRule adds an SSL Inbound Inspection rule to the running configuration (and the
// candidate), as if committed earlier.
func (s *Sim) AddDecryptionRule(spec DecryptionRuleSpec) error {
	return s.addCommitted(func() error { return s.addDecryptionRule(spec) })
}

type ruleRef struct {
	vsys string
	node *node
}

func (r ruleRef) certificates() []string {
	var out []string
	for _, m := range r.node.path("type", "ssl-inbound-inspection", "certificates").children {
		if m.tag == "member" {
			out = append(out, m.text)
		}
	}
	return out
}

func decryptionRulesOf(root *node) []ruleRef {
	var out []ruleRef
	for _, v := range vsysNames(root) {
		for _, e := range location(root, v).path("rulebase", "decryption", "rules").entries() {
			if e.path("type", "ssl-inbound-inspection") != nil {
				out = append(out, ruleRef{vsys: v, node: e})
			}
		}
	}
	return out
}

// decryptionProblems is commit validation of the rules: every certificate must be issued and
// have its key (the firewall decrypts with it).
func (s *Sim) decryptionProblems(root *node) []string {
	var out []string
	for _, r := range decryptionRulesOf(root) {
		where := "rulebase -> decryption -> rules -> " + r.node.name + " -> type -> ssl-inbound-inspection"
		certs := r.certificates()
		if len(certs) == 0 {
			out = append(out, where+" -> certificates is missing")
		}
		for _, name := range certs {
			ref, ok := s.resolveCertificate(root, r.vsys, name)
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("%s -> certificates '%s' is not a valid reference", where, name))
			case ref.node.value("public-key") == "":
				out = append(out, fmt.Sprintf("%s -> certificates '%s' is a pending certificate request, not a certificate", where, name))
			default:
				if _, ok := s.privateKeys[ref.node.value("private-key")]; !ok {
					out = append(out, fmt.Sprintf("%s -> certificates '%s' has no usable private key", where, name))
				}
			}
		}
	}
	return out
}

func (s *Sim) decryptionReferrers(root *node, out map[*node][]string) {
	for _, r := range decryptionRulesOf(root) {
		for _, name := range r.certificates() {
			if ref, ok := s.resolveCertificate(root, r.vsys, name); ok {
				out[ref.node] = append(out[ref.node], "rulebase -> decryption -> rules -> "+r.node.name+" -> ssl-inbound-inspection")
			}
		}
	}
}

func ruleListenerKey(vsys, rule string) string { return "decryption:" + vsys + "/" + rule }

// reconcileRuleListenersLocked starts a listener for every inbound inspection rule of the running
// configuration. It stands in for the protected server as a client sees it through the
// firewall: the handshake presents the rule's certificate whose names match the SNI (the first
// one without SNI or match).
func (s *Sim) reconcileRuleListenersLocked() error {
	for _, r := range decryptionRulesOf(s.running) {
		key := ruleListenerKey(r.vsys, r.node.name)
		if _, ok := s.listeners[key]; ok {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("panossim: listener for %s: %w", key, err)
		}
		vsys, name := r.vsys, r.node.name
		cfg := &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.ruleCertificate(vsys, name, hello.ServerName)
			},
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, "panossim: decryption rule %s\n", name)
			}),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
		}
		s.listeners[key] = &servedListener{ln: ln, srv: srv}
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			_ = srv.Serve(tls.NewListener(ln, cfg))
		}()
	}
	return nil
}

func (s *Sim) ruleCertificate(vsys, rule, serverName string) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	e := location(s.running, vsys).path("rulebase", "decryption", "rules").entry(rule)
	if e == nil {
		return nil, fmt.Errorf("decryption rule %s no longer exists", rule)
	}
	var first *tls.Certificate
	for _, name := range (ruleRef{vsys: vsys, node: e}).certificates() {
		c, err := s.tlsCertificateLocked(vsys, name)
		if err != nil {
			continue
		}
		if serverName != "" && c.Leaf.VerifyHostname(serverName) == nil {
			return c, nil
		}
		if first == nil {
			first = c
		}
	}
	if first == nil {
		return nil, fmt.Errorf("decryption rule %s: no usable certificate", rule)
	}
	return first, nil
}

// DecryptionRuleAddress is host:port of the TLS listener of inbound inspection rule name in vsys
// ("" = vsys1); "" when there is none.
func (s *Sim) DecryptionRuleAddress(vsys, name string) string {
	if vsys == "" {
		vsys = "vsys1"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[ruleListenerKey(vsys, name)]; ok {
		return l.ln.Addr().String()
	}
	return ""
}
