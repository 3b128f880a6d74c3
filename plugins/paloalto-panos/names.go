package paloaltopanos

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// Certificate names are at most 63 characters on a firewall and 31 on Panorama (Keyfactor's
// validator and README). Names are built from [A-Za-z0-9_-] only: PowerPAN reports periods being
// stripped, and the GUI allows little else.
const firewallNameLimit = 63

// sanitize keeps letters, digits, '_' and '-', turns anything else into a single '-', and
// trims separators from both ends.
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
		if !ok {
			r = '-'
		}
		if r == '-' {
			if dash {
				continue
			}
			dash = true
		} else {
			dash = false
		}
		b.WriteRune(r)
	}
	return strings.Trim(b.String(), "-_")
}

// truncate cuts s to n bytes (s is ASCII after sanitize) without leaving a separator at the end.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.TrimRight(s, "-_")
}

// newCertName makes a new, unique certificate name from a hint: hint-YYMMDDhhmm-rrrrrr, the hint
// shortened so the whole fits limit.
func newCertName(hint string, limit int, now time.Time) (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	suffix := "-" + now.UTC().Format("0601021504") + "-" + hex.EncodeToString(b[:])
	base := truncate(sanitize(hint), limit-len(suffix))
	if base == "" {
		base = truncate("certfleet", limit-len(suffix))
	}
	return base + suffix, nil
}

// csrCertName names the entry of one GenerateCSR call: for an attempt (CSRRequest.AttemptID)
// always <hint>-<12 hex of the attempt> (sdk.AttemptName), so a call repeated after its answer was
// lost finds the entry the first call made; without one, newCertName.
func csrCertName(req sdk.CSRRequest, limit int) (string, error) {
	if req.AttemptID == "" {
		return newCertName(req.NameHint, limit, time.Now())
	}
	hint := sanitize(req.NameHint)
	if hint == "" {
		hint = "certfleet"
	}
	return sdk.AttemptName(hint, "-", req.AttemptID, limit), nil
}

// caCertName names a CA certificate of a chain: ca-<common name>-<fingerprint prefix>, so the
// same CA certificate always gets the same name and different ones never collide.
func caCertName(commonName, fingerprint string, limit int) string {
	suffix := "-" + fingerprint[:10]
	base := truncate("ca-"+sanitize(commonName), limit-len(suffix))
	if base == "ca" || base == "" {
		base = "ca"
	}
	return base + suffix
}
