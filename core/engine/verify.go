package engine

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func normalized(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		out = append(out, strings.ToLower(s))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// verifyCSR checks a CSR from a plugin before any CA sees it: a valid signature, exactly the
// requested subject and names, and the requested key type and size.
func verifyCSR(csrPEM string, c Certificate) error {
	csr, err := sdk.ParseCSRPEM(csrPEM)
	if err != nil {
		return err
	}
	var problems []string
	if got := sdk.KeySpecOfCSR(csr); got != c.KeySpec {
		problems = append(problems, fmt.Sprintf("key is %s, want %s", got, c.KeySpec))
	}
	sub := csr.Subject
	field := func(name string, got []string, want string) {
		if want == "" && len(got) == 0 {
			return
		}
		if len(got) != 1 || got[0] != want {
			problems = append(problems, fmt.Sprintf("%s is %q, want %q", name, strings.Join(got, ","), want))
		}
	}
	if sub.CommonName != c.Subject.CommonName {
		problems = append(problems, fmt.Sprintf("CN is %q, want %q", sub.CommonName, c.Subject.CommonName))
	}
	field("O", sub.Organization, c.Subject.Organization)
	field("OU", sub.OrganizationalUnit, c.Subject.OrganizationalUnit)
	field("L", sub.Locality, c.Subject.Locality)
	field("ST", sub.Province, c.Subject.State)
	field("C", sub.Country, c.Subject.Country)
	if got, want := normalized(csr.DNSNames), normalized(c.SANs.DNSNames); !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("DNS names are %v, want %v", got, want))
	}
	var ips []string
	for _, ip := range csr.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got, want := normalized(ips), normalized(c.SANs.IPAddresses); !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("IP addresses are %v, want %v", got, want))
	}
	wantEmails := c.SANs.EmailAddresses
	if c.Subject.Email != "" && !slices.Contains(wantEmails, c.Subject.Email) {
		wantEmails = append(slices.Clone(wantEmails), c.Subject.Email)
	}
	if got, want := normalized(csr.EmailAddresses), normalized(wantEmails); len(got) > 0 || len(want) > 0 {
		if !slices.Equal(got, want) {
			problems = append(problems, fmt.Sprintf("email addresses are %v, want %v", got, want))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// verifyIssued checks what a CA returned: the certificate is for the CSR's key, carries every
// requested name, and is signed by the first certificate of the chain.
func verifyIssued(res issuer.Result, csrPEM string, c Certificate) error {
	leaf, err := sdk.ParseCertificatePEM(res.CertPEM)
	if err != nil {
		return err
	}
	csr, err := sdk.ParseCSRPEM(csrPEM)
	if err != nil {
		return fmt.Errorf("recorded CSR: %w", err)
	}
	if !sdk.PublicKeysEqual(csr.PublicKey, leaf.PublicKey) {
		return errors.New("the certificate is not for the key the device made")
	}
	for _, name := range c.SANs.DNSNames {
		if leaf.VerifyHostname(name) != nil {
			return fmt.Errorf("the certificate does not cover %s", name)
		}
	}
	for _, ip := range c.SANs.IPAddresses {
		if leaf.VerifyHostname(ip) != nil {
			return fmt.Errorf("the certificate does not cover %s", ip)
		}
	}
	if len(res.ChainPEM) > 0 {
		parent, err := sdk.ParseCertificatePEM(res.ChainPEM[0])
		if err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		if err := leaf.CheckSignatureFrom(parent); err != nil {
			return fmt.Errorf("the certificate is not signed by the first chain certificate %q: %w", parent.Subject, err)
		}
	}
	return nil
}
