package sdk

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// AttemptTagLen is the length of the tag AttemptName puts after the hint: 12 hex digits (48 bits),
// so two attempts of one device practically never share a name.
const AttemptTagLen = 12

// AttemptTag is n lower-case hex digits (1 to 64) derived from attemptID (CSRRequest.AttemptID):
// the same attempt always gives the same tag, and the tag is safe in any object name whatever
// characters the core put in the attempt ID.
func AttemptTag(attemptID string, n int) string {
	sum := sha256.Sum256([]byte(attemptID))
	tag := hex.EncodeToString(sum[:])
	n = max(1, min(n, len(tag)))
	return tag[:n]
}

// AttemptName is the name of the objects one GenerateCSR attempt creates on a device: hint, cut so
// the whole name is at most maxLen bytes, then sep, then AttemptTag(attemptID, AttemptTagLen). The
// same hint and attempt ID always give the same name, so a call repeated after its answer was lost
// finds what the first call made. hint and sep must already hold only characters the device
// allows; separators ('-', '_', '.') left at the end of the cut hint are dropped. When maxLen
// leaves no room for the hint, the name is the tag alone.
func AttemptName(hint, sep, attemptID string, maxLen int) string {
	tag := AttemptTag(attemptID, AttemptTagLen)
	room := maxLen - len(sep) - len(tag)
	if room <= 0 {
		return tag
	}
	if len(hint) > room {
		hint = hint[:room]
		for hint != "" && !utf8.ValidString(hint) {
			hint = hint[:len(hint)-1]
		}
	}
	hint = strings.TrimRight(hint, "-_.")
	if hint == "" {
		return tag
	}
	return hint + sep + tag
}
