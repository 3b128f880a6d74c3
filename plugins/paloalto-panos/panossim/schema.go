package panossim

import (
	"fmt"
	"strings"
)

// schema is the part of the PAN-OS configuration schema the simulator models. Parts marked open
// accept children the simulator does not model (a real device would check them; the simulator
// cannot), while modelled elements are checked: unknown tags are rejected as "unexpected here",
// as the device does, and entry names are checked for presence and length.
type schema struct {
	children map[string]*schema
	leaf     bool
	open     bool
	// entryName > 0 marks an <entry> and is the longest name allowed.
	entryName int
}

func leafSchema() *schema { return &schema{leaf: true} }

func container(open bool, children map[string]*schema) *schema {
	return &schema{children: children, open: open}
}

func list(maxName int, open bool, children map[string]*schema) *schema {
	e := &schema{children: children, open: open, entryName: maxName}
	return &schema{children: map[string]*schema{"entry": e}}
}

// Name limits: 63 characters for certificates on a firewall (31 on Panorama) [Keyfactor's
// validator]; 31 for profiles and GlobalProtect objects [UNCONFIRMED].
const (
	maxCertName    = 63
	maxProfileName = 31
)

var certificateFields = []string{
	"common-name", "subject", "issuer", "subject-hash", "issuer-hash", "not-valid-before", "not-valid-after",
	"expiry-epoch", "ca", "algorithm", "public-key", "private-key", "private-key-on-hsm", "csr", "status",
	"revoke-date-epoch",
}

func locationChildren() map[string]*schema {
	cert := map[string]*schema{}
	for _, f := range certificateFields {
		cert[f] = leafSchema()
	}
	return map[string]*schema{
		"certificate": list(maxCertName, false, cert),
		"ssl-tls-service-profile": list(maxProfileName, false, map[string]*schema{
			"certificate":       leafSchema(),
			"protocol-settings": container(true, nil),
		}),
	}
}

var configSchema = func() *schema {
	vsys := locationChildren()
	vsys["global-protect"] = container(true, map[string]*schema{
		// GlobalProtect paths as in PaloAltoNetworks/pan-os-codegen (specs/network/
		// globalprotect-portal.yaml: portal-config/ssl-tls-service-profile; specs/device/
		// globalprotect-gateway.yaml: ssl-tls-service-profile); the rest is not modelled.
		"global-protect-portal": list(maxProfileName, true, map[string]*schema{
			"portal-config": container(true, map[string]*schema{"ssl-tls-service-profile": leafSchema()}),
		}),
		"global-protect-gateway": list(maxProfileName, true, map[string]*schema{
			"ssl-tls-service-profile": leafSchema(),
		}),
	})
	vsys["rulebase"] = decryptionRuleSchema()
	// The top of a firewall configuration (pango and pan-os-python address everything below
	// mgt-config, shared and devices; readonly is the Panorama-managed part).
	return container(false, map[string]*schema{
		"mgt-config": container(true, nil),
		"readonly":   container(true, nil),
		"shared":     container(true, locationChildren()),
		"devices": list(63, true, map[string]*schema{
			"vsys": list(31, true, vsys),
		}),
	})
}()

// inSchema reports whether an xpath names a node of the schema. A device answers an xpath
// outside its schema with "Could not find schema node for xpath <xpath>" (quoted by a PAN-OS
// workflow of the MSActivator library, paloalto_generic DHCP client task). The parts the
// simulator leaves open are not checked: a real device would, the simulator cannot know them.
func inSchema(steps []step) bool {
	if len(steps) == 0 || steps[0].tag != "config" {
		return false
	}
	sch := configSchema
	for _, st := range steps[1:] {
		next, ok := sch.children[st.tag]
		if !ok {
			return sch.open
		}
		sch = next
	}
	return true
}

// validate checks n (an element at path) against sch.
func validate(n *node, sch *schema, path []string) error {
	here := append(append([]string(nil), path...), n.tag)
	if sch.entryName > 0 {
		if !n.hasName || strings.TrimSpace(n.name) == "" {
			return fmt.Errorf("%s: entry without a name", strings.Join(path, " -> "))
		}
		if len(n.name) > sch.entryName {
			return fmt.Errorf("%s -> %s: name is longer than %d characters", strings.Join(path, " -> "), n.name, sch.entryName)
		}
		for _, r := range n.name {
			// Which characters a device accepts in names is [UNCONFIRMED] (letters, digits,
			// space, '.', '_' and '-' per the GUI); the simulator only refuses control characters
			// so that escaping of the rest can be tested.
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("%s -> %q: control character in name", strings.Join(path, " -> "), n.name)
			}
		}
		here = append(here[:len(here)-1], n.name)
	}
	if sch.leaf {
		if len(n.children) > 0 {
			return fmt.Errorf("%s -> %s unexpected here", strings.Join(here, " -> "), n.children[0].tag)
		}
		return nil
	}
	for _, c := range n.children {
		cs, ok := sch.children[c.tag]
		if !ok {
			if sch.open {
				continue
			}
			return fmt.Errorf("%s -> %s unexpected here", strings.Join(here, " -> "), c.tag)
		}
		if err := validate(c, cs, here); err != nil {
			return err
		}
	}
	return nil
}

func validateConfig(root *node) error { return validate(root, configSchema, nil) }
