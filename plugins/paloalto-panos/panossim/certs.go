package panossim

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// generateRequest is a parsed <request><certificate><generate>.
type generateRequest struct {
	name       string
	cn         string
	algorithm  string
	bits       int
	digest     string
	signedBy   string
	country    string
	state      string
	locality   string
	org        string
	orgUnits   []string
	email      string
	dnsNames   []string
	ips        []net.IP
	altEmails  []string
	daysExpiry int
}

func listOrText(n *node) []string {
	if n == nil {
		return nil
	}
	if ms := n.memberValues(); len(ms) > 0 {
		return ms
	}
	if v := strings.TrimSpace(n.text); v != "" {
		return []string{v}
	}
	return nil
}

// generateSchema is what "request certificate generate" takes, as the independent clients send
// it: Keyfactor's GenerateCertificateRequestMetadata, airbnb/ottr, chrisgoodwins'
// fw-mgt-cert-rollout and the CLI form in pan-os-ansible's panos_cert_gen_ssh (see the team's
// panos-xmlapi.md, section 3.2). Anything else is refused as an op command with an unknown
// element is: code 17 " ... -> X is unexpected" (pan-python issue #24 shows code 17 with
// "is unexpected"; pan-os-ansible/ansible-pan #58 "set -> deviceconfig  is unexpected").
var generateSchema = func() *schema {
	members := func() *schema { return container(false, map[string]*schema{"member": leafSchema()}) }
	fields := map[string]*schema{
		"algorithm": container(false, map[string]*schema{
			"RSA":   container(false, map[string]*schema{"rsa-nbits": leafSchema()}),
			"ECDSA": container(false, map[string]*schema{"ecdsa-nbits": leafSchema()}),
		}),
		"organization-unit": members(), "hostname": members(), "ip": members(), "alt-email": members(),
	}
	for _, f := range []string{"certificate-name", "name", "digest", "signed-by", "ca", "days-till-expiry",
		"country-code", "state", "locality", "organization", "email"} {
		fields[f] = leafSchema()
	}
	return container(false, fields)
}()

// unexpectedElement returns the first element below n that sch does not allow, as the device
// names it ("request -> certificate -> generate -> bogus"); "" when there is none. A list may
// also be given as plain text (listOrText).
func unexpectedElement(n *node, sch *schema, path string) string {
	for _, c := range n.children {
		cs, ok := sch.children[c.tag]
		if !ok {
			if sch.open {
				continue
			}
			return path + " -> " + c.tag
		}
		if cs.leaf {
			if len(c.children) > 0 {
				return path + " -> " + c.tag + " -> " + c.children[0].tag
			}
			continue
		}
		if bad := unexpectedElement(c, cs, path+" -> "+c.tag); bad != "" {
			return bad
		}
	}
	return ""
}

func parseGenerate(g *node) (*generateRequest, *apiErr) {
	if bad := unexpectedElement(g, generateSchema, "request -> certificate -> generate"); bad != "" {
		return nil, errorf("17", " %s is unexpected", bad)
	}
	req := &generateRequest{
		name: g.value("certificate-name"), cn: g.value("name"), digest: g.value("digest"), signedBy: g.value("signed-by"),
		country: g.value("country-code"), state: g.value("state"), locality: g.value("locality"), org: g.value("organization"),
		orgUnits: listOrText(g.child("organization-unit")), email: g.value("email"),
		dnsNames: listOrText(g.child("hostname")), altEmails: listOrText(g.child("alt-email")),
	}
	switch {
	case req.name == "":
		return nil, errorf("", "generate -> certificate-name is missing")
	case len(req.name) > maxCertName:
		return nil, errorf("", "generate -> certificate-name %q is longer than %d characters", req.name, maxCertName)
	case req.cn == "":
		return nil, errorf("", "generate -> name is missing")
	case len(req.cn) > 64:
		return nil, errorf("", "generate -> name is longer than 64 characters")
	case req.signedBy == "":
		return nil, errorf("", "generate -> signed-by is missing")
	case req.signedBy != "external":
		// Signing by a CA on the box is a real feature the simulator does not model.
		return nil, errorf("", "generate -> signed-by %q: the simulator only makes CSRs (signed-by external)", req.signedBy)
	}
	if req.digest == "" {
		req.digest = "sha256"
	}
	switch {
	case g.path("algorithm", "RSA") != nil:
		req.algorithm = "RSA"
		bits, ok := atoi(g.value("algorithm", "RSA", "rsa-nbits"))
		if !ok || (bits != 512 && bits != 1024 && bits != 2048 && bits != 3072 && bits != 4096) {
			return nil, errorf("", "generate -> algorithm -> RSA -> rsa-nbits %q is invalid", g.value("algorithm", "RSA", "rsa-nbits"))
		}
		if bits == 512 {
			return nil, errorf("", "generate -> rsa-nbits 512: not simulated (Go refuses keys this small)")
		}
		req.bits = bits
	case g.path("algorithm", "ECDSA") != nil:
		req.algorithm = "ECDSA"
		bits, ok := atoi(g.value("algorithm", "ECDSA", "ecdsa-nbits"))
		// 256 and 384 are what every public source offers (cgw's menus, Keyfactor's tests, the
		// SCM API); no source shows 521, so the simulator refuses it.
		if !ok || (bits != 256 && bits != 384) {
			return nil, errorf("", "generate -> algorithm -> ECDSA -> ecdsa-nbits %q is invalid", g.value("algorithm", "ECDSA", "ecdsa-nbits"))
		}
		req.bits = bits
	default:
		return nil, errorf("", "generate -> algorithm is missing")
	}
	if _, ok := signatureAlgorithm(req.algorithm, req.digest); !ok {
		return nil, errorf("", "generate -> digest %q is invalid for %s", req.digest, req.algorithm)
	}
	if req.country != "" && len(req.country) != 2 {
		return nil, errorf("", "generate -> country-code %q is not a two-letter code", req.country)
	}
	for _, ip := range listOrText(g.child("ip")) {
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return nil, errorf("", "generate -> ip %q is not an IP address", ip)
		}
		req.ips = append(req.ips, parsed)
	}
	if d := g.value("days-till-expiry"); d != "" {
		days, ok := atoi(d)
		if !ok || days < 1 {
			return nil, errorf("", "generate -> days-till-expiry %q is invalid", d)
		}
		req.daysExpiry = days
	}
	return req, nil
}

func (s *Sim) certificateNameTaken(root *node, name string) bool {
	if location(root, "").child("certificate").entry(name) != nil {
		return true
	}
	for _, v := range vsysNames(root) {
		if location(root, v).child("certificate").entry(name) != nil {
			return true
		}
	}
	return false
}

// makeCSR signs a request for the generate fields with key.
func (s *Sim) makeCSR(key crypto.Signer, req *generateRequest) (string, *x509.CertificateRequest, error) {
	tmpl := &x509.CertificateRequest{
		DNSNames: req.dnsNames, IPAddresses: req.ips, EmailAddresses: req.altEmails,
	}
	tmpl.Subject.CommonName = req.cn
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	tmpl.Subject.Country, tmpl.Subject.Province, tmpl.Subject.Locality = one(req.country), one(req.state), one(req.locality)
	tmpl.Subject.Organization, tmpl.Subject.OrganizationalUnit = one(req.org), req.orgUnits
	if req.email != "" {
		tmpl.Subject.ExtraNames = append(tmpl.Subject.ExtraNames, attributeTypeAndValue(oidEmailAddress, req.email))
	}
	if s.cfg.AddCommonNameSAN && !contains(req.dnsNames, req.cn) && net.ParseIP(req.cn) == nil {
		tmpl.DNSNames = append([]string{req.cn}, tmpl.DNSNames...)
	}
	tmpl.SignatureAlgorithm, _ = signatureAlgorithm(req.algorithm, req.digest)
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return "", nil, err
	}
	parsed, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return "", nil, err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), parsed, nil
}

// generate answers request certificate generate: a new key pair on the box and, with signed-by
// external, a pending entry holding the CSR, in the candidate configuration.
func (s *Sim) generate(w http.ResponseWriter, admin string, g *node) {
	req, aerr := parseGenerate(g)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	s.mu.Lock()
	taken := s.certificateNameTaken(s.candidate, req.name)
	s.mu.Unlock()
	if taken && !s.cfg.GenerateOverwrites {
		// Whether generate overwrites an existing name is [UNCONFIRMED]: refused unless
		// Config.GenerateOverwrites.
		writeErr(w, errorf("", "generate -> certificate-name %s already exists", req.name))
		return
	}
	// Key generation can take seconds (RSA 4096): not under the lock.
	key, err := s.newKey(req.algorithm, req.bits)
	if err != nil {
		writeErr(w, errorf("", "key generation failed: %v", err))
		return
	}
	csrPEM, csr, err := s.makeCSR(key, req)
	if err != nil {
		writeErr(w, errorf("", "certificate request failed: %v", err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	if s.certificateNameTaken(s.candidate, req.name) && !s.cfg.GenerateOverwrites {
		writeErr(w, errorf("", "generate -> certificate-name %s already exists", req.name))
		return
	}
	handle, err := s.storeKey(key)
	if err != nil {
		writeErr(w, errorf("2", "internal error: %v", err))
		return
	}
	algo := "RSA"
	if req.algorithm == "ECDSA" {
		algo = "EC"
	}
	e := entry(req.name,
		leaf("common-name", req.cn), leaf("algorithm", algo), leaf("ca", "no"),
		leaf("subject", oneline(csr.RawSubject)), leaf("csr", csrPEM), leaf("private-key", handle),
	)
	into := s.cfg.GenerateInto
	if err := s.changeLocked(admin, func(root *node) *apiErr {
		loc := location(root, into)
		if loc == nil {
			return errorf("", "vsys %s does not exist", into)
		}
		if s.cfg.GenerateOverwrites {
			// The entry of that name goes, wherever it was (shared or a vsys).
			for _, v := range append([]string{""}, vsysNames(root)...) {
				if list := location(root, v).child("certificate"); list != nil {
					if old := list.entry(req.name); old != nil {
						list.remove(old)
					}
				}
			}
		}
		putEntry(loc.ensure("certificate"), e.clone())
		return nil
	}); err != nil {
		writeErr(w, err)
		return
	}
	writeXML(w, http.StatusOK, `<response status="success"><result>Successfully generated certificate and key pair</result></response>`)
}

// importFile answers type=import&category=certificate: the PEM certificate lands in the
// candidate configuration, on the pending entry of the same name (which must hold the matching
// key) or as a new certificate without a key.
func (s *Sim) importFile(w http.ResponseWriter, r *http.Request, admin string) {
	category, name, format, vsys := r.Form.Get("category"), r.Form.Get("certificate-name"), r.Form.Get("format"), r.Form.Get("vsys")
	switch {
	case category == "":
		writeErr(w, badRequest("Parameter \"category\" is required"))
		return
	case category != "certificate":
		writeErr(w, errorf("", "import of category %s is not simulated (only certificate)", category))
		return
	case name == "":
		writeErr(w, badRequest("Parameter \"certificate-name\" is required while importing certificate"))
		return
	case format == "":
		writeErr(w, badRequest("Parameter \"format\" is required while importing certificate"))
		return
	case format != "pem":
		writeErr(w, errorf("", "import format %s is not simulated (only pem)", format))
		return
	case len(name) > maxCertName:
		writeErr(w, errorf("", "Import of %s failed. The name is longer than %d characters", name, maxCertName))
		return
	}
	if r.MultipartForm == nil || len(r.MultipartForm.File["file"]) == 0 {
		writeErr(w, badRequest("File is missing: send it as the multipart part \"file\""))
		return
	}
	f, err := r.MultipartForm.File["file"][0].Open()
	if err != nil {
		writeErr(w, badRequest("File cannot be read: %v", err))
		return
	}
	content, err := io.ReadAll(io.LimitReader(f, 1<<20))
	f.Close()
	if err != nil {
		writeErr(w, badRequest("File cannot be read: %v", err))
		return
	}
	certs, err := sdk.ParseCertificatesPEM(string(content))
	if err != nil {
		writeErr(w, errorf("", "Import of %s failed. Invalid certificate file: %v", name, err))
		return
	}
	// A file of several certificates is the signed certificate followed by its chain: DOC-4289
	// imports it so onto the entry, and acme.sh deploy/panos.sh and airbnb/ottr upload their
	// fullchain files the same way. The entry keeps them all and its profiles serve them.
	cert := certs[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	loc := location(s.candidate, vsys)
	if loc == nil {
		writeErr(w, errorf("", "Import of %s failed. vsys %s does not exist", name, vsys))
		return
	}
	e := certificateEntry(name, certs)
	existing := loc.child("certificate").entry(name)
	switch {
	case existing != nil && existing.value("public-key") != "":
		if old, err := sdk.ParseCertificatesPEM(existing.value("public-key")); err == nil && old[0].Equal(cert) {
			writeXML(w, http.StatusOK, `<response status="success"><result>Successfully imported `+escape(name)+` into candidate configuration</result></response>`)
			return
		}
		// "API can't upload and overwrite the certificate file in one step" (jal-tw) [UNCONFIRMED generality].
		writeErr(w, errorf("", "Import of %s failed. A certificate of this name already exists", name))
		return
	case existing != nil && existing.value("private-key") != "":
		handle := existing.value("private-key")
		key, ok := s.privateKeys[handle]
		if !ok || !sameKey(key.Public(), cert.PublicKey) {
			// The exact wording is [UNCONFIRMED].
			writeErr(w, errorf("", "Import of %s failed. The certificate does not match the private key of %s", name, name))
			return
		}
		if len(certs) > 1 && s.cfg.RefuseChainOnKeyEntry {
			// psiri/letsencrypt_paloalto PR #1 ("private key mismatch") [UNCONFIRMED for PEM].
			writeErr(w, errorf("", "Import of %s failed. private key mismatch", name))
			return
		}
		e.children = append(e.children, leaf("private-key", handle))
	case s.cfg.RefuseCAImport:
		// pan-os-ansible #555, verbatim.
		writeErr(w, errorf("", "Import of %s failed. private key doesn't exist for csr", name))
		return
	}
	if err := s.changeLocked(admin, func(root *node) *apiErr {
		loc := location(root, vsys)
		if loc == nil {
			return errorf("", "vsys %s does not exist", vsys)
		}
		putEntry(loc.ensure("certificate"), e.clone())
		return nil
	}); err != nil {
		writeErr(w, err)
		return
	}
	writeXML(w, http.StatusOK, `<response status="success"><result>Successfully imported `+escape(name)+` into candidate configuration</result></response>`)
}

// export answers type=export&category=certificate with the raw file.
func (s *Sim) export(w http.ResponseWriter, r *http.Request) {
	category, name, format, vsys := r.Form.Get("category"), r.Form.Get("certificate-name"), r.Form.Get("format"), r.Form.Get("vsys")
	switch {
	case category != "certificate":
		writeErr(w, badRequest("Parameter \"category\" must be certificate"))
		return
	case name == "":
		writeErr(w, badRequest("Parameter \"certificate-name\" is required while exporting certificate"))
		return
	case format == "":
		// Verbatim from pango's tests.
		writeErr(w, badRequest("Parameter \"format\" is required while exporting certificate"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	// Without vsys only shared is searched: whether a device finds a vsys entry anyway is
	// [UNCONFIRMED].
	e := location(s.candidate, vsys).child("certificate").entry(name)
	if e == nil {
		writeErr(w, errorf("", "Certificate %s does not exist", name))
		return
	}
	var body, filename string
	switch format {
	case "pkcs10":
		body, filename = e.value("csr"), name+".csr"
		if body == "" {
			writeErr(w, errorf("", "%s has no pending certificate request", name))
			return
		}
	case "pem":
		if r.Form.Get("include-key") == "yes" {
			writeErr(w, errorf("", "export with include-key=yes is not simulated: keys never leave the simulator"))
			return
		}
		body, filename = e.value("public-key"), name+".pem"
		if body == "" {
			writeErr(w, errorf("", "%s has no certificate yet", name))
			return
		}
	default:
		writeErr(w, errorf("", "export format %s is not simulated (pkcs10, pem)", format))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filename))
	_, _ = w.Write([]byte(body + "\n"))
}

// --- references ---

type objectRef struct {
	vsys string
	node *node
}

// resolveCertificate finds what a certificate reference from location from names: the
// location's own certificates, then shared. On a single-vsys device shared and vsys1 objects
// are treated as one namespace, so a shared profile may name a certificate that generate put in
// vsys1 [UNCONFIRMED].
func (s *Sim) resolveCertificate(root *node, from, name string) (objectRef, bool) {
	return s.resolve(root, "certificate", from, name)
}

func (s *Sim) resolveProfile(root *node, from, name string) (objectRef, bool) {
	return s.resolve(root, "ssl-tls-service-profile", from, name)
}

func (s *Sim) resolve(root *node, list, from, name string) (objectRef, bool) {
	if from != "" {
		if e := location(root, from).child(list).entry(name); e != nil {
			return objectRef{vsys: from, node: e}, true
		}
	}
	if e := location(root, "").child(list).entry(name); e != nil {
		return objectRef{node: e}, true
	}
	if from == "" && !s.multiVsys() {
		for _, v := range vsysNames(root) {
			if e := location(root, v).child(list).entry(name); e != nil {
				return objectRef{vsys: v, node: e}, true
			}
		}
	}
	return objectRef{}, false
}

// profileRef is an SSL/TLS service profile with where it lives.
type profileRef struct {
	vsys string
	node *node
}

func profilesOf(root *node) []profileRef {
	var out []profileRef
	for _, e := range location(root, "").child("ssl-tls-service-profile").entries() {
		out = append(out, profileRef{node: e})
	}
	for _, v := range vsysNames(root) {
		for _, e := range location(root, v).child("ssl-tls-service-profile").entries() {
			out = append(out, profileRef{vsys: v, node: e})
		}
	}
	return out
}

type gpRef struct {
	kind, vsys string
	node       *node
}

func (g gpRef) profile() string {
	if g.kind == "global-protect-portal" {
		return g.node.value("portal-config", "ssl-tls-service-profile")
	}
	return g.node.value("ssl-tls-service-profile")
}

func globalProtectOf(root *node) []gpRef {
	var out []gpRef
	for _, v := range vsysNames(root) {
		for _, kind := range []string{"global-protect-portal", "global-protect-gateway"} {
			for _, e := range location(root, v).path("global-protect", kind).entries() {
				out = append(out, gpRef{kind: kind, vsys: v, node: e})
			}
		}
	}
	return out
}

// referrers maps each referenced certificate or profile entry to who references it.
func (s *Sim) referrers(root *node) map[*node][]string {
	out := map[*node][]string{}
	for _, p := range profilesOf(root) {
		if ref, ok := s.resolveCertificate(root, p.vsys, p.node.value("certificate")); ok {
			out[ref.node] = append(out[ref.node], "ssl-tls-service-profile -> "+p.node.name+" -> certificate")
		}
	}
	for _, g := range globalProtectOf(root) {
		if ref, ok := s.resolveProfile(root, g.vsys, g.profile()); ok {
			out[ref.node] = append(out[ref.node], g.kind+" -> "+g.node.name+" -> ssl-tls-service-profile")
		}
	}
	s.decryptionReferrers(root, out)
	return out
}

// certificateReferences lists references into the subtrees about to be deleted.
func (s *Sim) certificateReferences(root *node, found []*node) []string {
	refs := s.referrers(root)
	var out []string
	var walk func(n *node)
	walk = func(n *node) {
		out = append(out, refs[n]...)
		for _, c := range n.children {
			walk(c)
		}
	}
	for _, n := range found {
		walk(n)
	}
	return out
}

// referenceProblems is commit validation: every profile must name a usable certificate (issued,
// with its key) and every GlobalProtect portal or gateway an existing profile.
func (s *Sim) referenceProblems(root *node) []string {
	var out []string
	for _, p := range profilesOf(root) {
		where := "ssl-tls-service-profile -> " + p.node.name
		name := p.node.value("certificate")
		if name == "" {
			out = append(out, where+" -> certificate is missing")
			continue
		}
		ref, ok := s.resolveCertificate(root, p.vsys, name)
		if !ok {
			out = append(out, fmt.Sprintf("%s -> certificate '%s' is not a valid reference", where, name))
			continue
		}
		if ref.node.value("public-key") == "" {
			out = append(out, fmt.Sprintf("%s -> certificate '%s' is a pending certificate request, not a certificate", where, name))
			continue
		}
		if _, ok := s.privateKeys[ref.node.value("private-key")]; !ok {
			out = append(out, fmt.Sprintf("%s -> certificate '%s' has no usable private key", where, name))
		}
	}
	for _, g := range globalProtectOf(root) {
		if _, ok := s.resolveProfile(root, g.vsys, g.profile()); !ok {
			out = append(out, fmt.Sprintf("%s -> %s -> ssl-tls-service-profile '%s' is not a valid reference", g.kind, g.node.name, g.profile()))
		}
	}
	return append(out, s.decryptionProblems(root)...)
}
