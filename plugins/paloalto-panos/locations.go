package paloaltopanos

import (
	"strings"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
)

// deviceXPath is the device entry of a firewall's configuration.
const deviceXPath = "/config/devices/entry[@name='localhost.localdomain']"

// location is where objects live: "" for shared, or a vsys name (checked against vsysPattern,
// so it is safe inside an xpath literal). A Panorama template would be another kind of location,
// with its own prefix and the 31-character name limit.
type location string

const shared location = ""

func (l location) xpath() string {
	if l == shared {
		return "/config/shared"
	}
	return deviceXPath + "/vsys/entry[@name='" + string(l) + "']"
}

func (l location) String() string {
	if l == shared {
		return "shared"
	}
	return string(l)
}

// nameLimit is the longest certificate name allowed here.
func (l location) nameLimit() int { return firewallNameLimit }

// importParams are the parameters that direct an import or export to the location.
func (l location) params() map[string]string {
	if l == shared {
		return nil
	}
	return map[string]string{"vsys": string(l)}
}

// ref is the cert_ref/key_ref of a certificate entry: its name in shared, vsysN/name in a vsys.
func ref(l location, name string) string {
	if l == shared {
		return name
	}
	return string(l) + "/" + name
}

// parseRef splits a ref into location and name.
func parseRef(r string) (location, string) {
	if i := strings.IndexByte(r, '/'); i > 0 && vsysPattern.MatchString(r[:i]) {
		return location(r[:i]), r[i+1:]
	}
	return shared, r
}

// certEntry is a certificate entry of the candidate configuration.
type certEntry struct {
	loc       location
	name      string
	publicKey string
	csr       string
	hasKey    bool
}

func (c certEntry) ref() string { return ref(c.loc, c.name) }

func parseCertEntry(loc location, e *panosclient.Element) certEntry {
	return certEntry{
		loc:       loc,
		name:      e.Attr("name"),
		publicKey: e.Value("public-key"),
		csr:       e.Value("csr"),
		hasKey:    e.Value("private-key") != "" || e.Value("private-key-on-hsm") == "yes",
	}
}

// searchLocations are where certificates are looked for: shared and the device's vsys
// (generate may put a new entry in vsys1: pan-os-ansible #592).
func (d *device) searchLocations() []location { return []location{shared, d.vsys} }
