package f5bigip

import (
	"context"
	"encoding/hex"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Inventory lists the certificates of the target's partition with their metadata (from
// sys/file/ssl-cert, which carries the expiry as POSIX seconds), and where each is bound: the
// client-ssl profiles whose certKeyChain names it as the certificate, and the virtual servers
// that carry those profiles. Chain bundles are listed (as CA) but never as bound.
func (*Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	var out []sdk.DeviceCertificate
	err := withDevice(ctx, t, func(d *device) error {
		certs, err := icontrol.List[icontrol.CertFile](ctx, d.c, icontrol.PathFileCert, url.Values{"$filter": {"partition eq " + d.partition}})
		if err != nil {
			return d.deviceError(ctx, "list certificates", err)
		}
		profiles, err := icontrol.List[icontrol.ClientSSLProfile](ctx, d.c, icontrol.PathClientSSL, nil)
		if err != nil {
			return d.deviceError(ctx, "list client-ssl profiles", err)
		}
		carriers, err := d.carriers(ctx)
		if err != nil {
			return err
		}
		for _, c := range certs {
			dc := describe(c)
			for _, p := range profiles {
				for _, e := range p.Entries() {
					if e.Cert != dc.CertRef {
						continue
					}
					dc.KeyRef = e.Key
					if p.Description != keyProfileDescription {
						// A PCI key's own profile is no place a user binds to; its virtual servers are.
						dc.Bindings = append(dc.Bindings, sdk.Binding{Kind: KindClientSSLProfile, Name: d.display(p.Path())})
					}
					for _, v := range carriers[p.Path()] {
						dc.Bindings = append(dc.Bindings, sdk.Binding{Kind: KindVirtual, Name: d.display(v), SNI: noneToEmpty(p.ServerName) != ""})
					}
				}
			}
			slices.SortFunc(dc.Bindings, func(a, b sdk.Binding) int {
				return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name)
			})
			dc.Bindings = slices.CompactFunc(dc.Bindings, func(a, b sdk.Binding) bool { return a.Kind == b.Kind && a.Name == b.Name })
			out = append(out, dc)
		}
		return nil
	})
	return out, err
}

// describe reads the device's metadata of one certificate object.
func describe(c icontrol.CertFile) sdk.DeviceCertificate {
	path := c.FullPath
	if path == "" {
		path = "/" + c.Partition + "/" + c.Name
	}
	dc := sdk.DeviceCertificate{
		CertRef:           path,
		Serial:            parseSerial(c.SerialNumber),
		Subject:           c.Subject,
		Issuer:            c.Issuer,
		SANs:              parseSANs(c.SubjectAlternativeName),
		SHA256Fingerprint: normalizeFingerprint(c.Fingerprint),
		IsCA:              c.IsBundle == "true",
		KeySpec:           keySpecOf(c),
	}
	if c.ExpirationDate > 0 {
		dc.NotAfter = time.Unix(c.ExpirationDate, 0).UTC()
	}
	return dc
}

// parseSerial turns the device's serial ("308384129" when it fits 63 bits, else
// "87:ae:02:f9:18:f9:4a:11") into lower-case hex of its bytes, as sdk.Describe writes it.
func parseSerial(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if strings.Contains(s, ":") {
		b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
		if err != nil {
			return strings.ToLower(s)
		}
		return hex.EncodeToString(new(big.Int).SetBytes(b).Bytes())
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return strings.ToLower(s)
	}
	return hex.EncodeToString(n.Bytes())
}

// parseSANs reads "DNS:a, DNS:b, IP Address:192.0.2.1, email:x@y".
func parseSANs(v string) sdk.SANs {
	var out sdk.SANs
	for _, part := range strings.Split(v, ",") {
		kind, val, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(kind)) {
		case "dns":
			out.DNSNames = append(out.DNSNames, val)
		case "ip address", "ip":
			out.IPAddresses = append(out.IPAddresses, val)
		case "email":
			out.EmailAddresses = append(out.EmailAddresses, val)
		}
	}
	return out
}

func keySpecOf(c icontrol.CertFile) sdk.KeySpec {
	switch {
	case strings.HasPrefix(c.KeyType, "rsa"):
		return sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: c.CertificateKeySize}
	case strings.HasPrefix(c.KeyType, "ec"):
		bits := map[string]int{"prime256v1": 256, "secp384r1": 384, "secp521r1": 521}[c.CertificateKeyCurveName]
		if bits == 0 {
			bits = c.CertificateKeySize
		}
		return sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: bits}
	}
	return sdk.KeySpec{}
}
