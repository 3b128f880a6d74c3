package sdk

import (
	"strings"
	"testing"
)

func TestAttemptName(t *testing.T) {
	id := "0123456789abcdef01234567"
	a := AttemptName("web-frontend", "-", id, 63)
	if a != AttemptName("web-frontend", "-", id, 63) {
		t.Fatalf("AttemptName is not deterministic")
	}
	if !strings.HasPrefix(a, "web-frontend-") || len(a) != len("web-frontend-")+AttemptTagLen {
		t.Errorf("AttemptName = %q, want web-frontend-<%d hex>", a, AttemptTagLen)
	}
	if b := AttemptName("web-frontend", "-", id+"x", 63); b == a {
		t.Errorf("two attempts share the name %q", a)
	}
	for _, max := range []int{31, 27, 20, 14, 13, 12, 5} {
		got := AttemptName("a-very-long-certificate-name", "_", id, max)
		if len(got) > max && len(got) != AttemptTagLen {
			t.Errorf("AttemptName(max %d) = %q (%d bytes)", max, got, len(got))
		}
		if !strings.HasSuffix(got, AttemptTag(id, AttemptTagLen)) || strings.Contains(got, "-_") {
			t.Errorf("AttemptName(max %d) = %q: want the hint cut cleanly before _<tag>", max, got)
		}
	}
	if got := AttemptName("--", "-", id, 63); got != AttemptTag(id, AttemptTagLen) {
		t.Errorf("AttemptName of an empty hint = %q, want the tag alone", got)
	}
	if got := AttemptName("ééé", "-", id, 2+1+AttemptTagLen); got != "é-"+AttemptTag(id, AttemptTagLen) {
		t.Errorf("AttemptName cut inside a character: %q", got)
	}
	if got := AttemptTag(id, 16); len(got) != 16 || !strings.HasPrefix(got, AttemptTag(id, AttemptTagLen)) {
		t.Errorf("AttemptTag(16) = %q", got)
	}
}
