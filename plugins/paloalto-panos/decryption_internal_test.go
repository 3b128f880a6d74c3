package paloaltopanos

import (
	"slices"
	"testing"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
)

// Both forms of an inbound inspection rule are read: the certificate list (PAN-OS 10.2+) and a
// single name as the text of ssl-inbound-inspection (earlier releases, unconfirmed).
func TestParseRuleForms(t *testing.T) {
	for _, c := range []struct {
		xml    string
		ok     bool
		certs  []string
		legacy bool
	}{
		{`<entry name="r"><type><ssl-inbound-inspection><certificates><member>a</member><member>b &amp; c</member></certificates></ssl-inbound-inspection></type></entry>`, true, []string{"a", "b & c"}, false},
		{`<entry name="r"><type><ssl-inbound-inspection>old-cert</ssl-inbound-inspection></type></entry>`, true, []string{"old-cert"}, true},
		{`<entry name="r"><type><ssl-forward-proxy/></type></entry>`, false, nil, false},
	} {
		e, err := panosclient.ParseElement([]byte(c.xml))
		if err != nil {
			t.Fatal(err)
		}
		r, ok := parseRule(location("vsys1"), e)
		if ok != c.ok || !slices.Equal(r.certificates, c.certs) || r.legacy != c.legacy {
			t.Errorf("%s: got %v %+v, want %v %v legacy=%v", c.xml, ok, r, c.ok, c.certs, c.legacy)
		}
	}
}
