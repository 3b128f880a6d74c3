package panosclient

import (
	"slices"
	"testing"
)

// The envelopes below are the shapes quoted in the reference (pango's and pan-python's tests and
// docs); the rule is pango's errorCheck.Failed.
func TestResponseFailedAndMessages(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		failed   bool
		notFound bool
		messages []string
	}{
		{"get found", `<response status="success" code="19"><result total-count="1" count="1"><entry name="a"/></result></response>`, false, false, nil},
		{"set", `<response status="success" code="20"><msg>command succeeded</msg></response>`, false, false, []string{"command succeeded"}},
		{"get absent: success with code 7", `<response status="success" code="7"><result/></response>`, true, true, nil},
		{"show absent", `<response status="error"><msg><line>No such node</line></msg></response>`, true, true, []string{"No such node"}},
		{"invalid object with CDATA lines", `<response status="error" code="12"><msg><line><![CDATA[ x -> y is invalid]]></line><line>second</line></msg></response>`, true, false, []string{"x -> y is invalid", "second"}},
		{"nested lines", `<response status="error" code="13"><msg><line><line>outer inner</line></line></msg></response>`, true, false, []string{"outer inner"}},
		{"export 400, odd quoting", `<response status = 'error' code = '400'><result><msg>Parameter &quot;format&quot; is required while exporting certificate</msg></result></response>`, true, false, []string{`Parameter "format" is required while exporting certificate`}},
		{"keygen 403", `<response status='error' code='403'><result><msg>Invalid Credential</msg></result></response>`, true, false, []string{"Invalid Credential"}},
		{"commit enqueued", `<response status="success" code="19"><result><msg><line>Commit job enqueued with jobid 912</line></msg><job>912</job></result></response>`, false, false, []string{"Commit job enqueued with jobid 912"}},
		{"success with a strange code", `<response status="success" code="14"><result/></response>`, true, false, nil},
		{"status failed", `<response status="failed"><result><job><details><line>boom</line></details></job></result></response>`, true, false, []string{"boom"}},
		{"no code", `<response status="success"><result><key>k</key></result></response>`, false, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseResponse([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.Failed() != c.failed {
				t.Errorf("Failed() = %v, want %v", r.Failed(), c.failed)
			}
			if !slices.Equal(r.Messages, c.messages) {
				t.Errorf("messages %q, want %q", r.Messages, c.messages)
			}
			if c.failed {
				e := apiErrorOf(200, r)
				if e.NotFound() != c.notFound {
					t.Errorf("NotFound() = %v, want %v", e.NotFound(), c.notFound)
				}
			}
		})
	}
}

func TestParseResponseRejectsOtherDocuments(t *testing.T) {
	for _, body := range []string{`<html><body>503</body></html>`, `not xml`, ``} {
		if _, err := ParseResponse([]byte(body)); err == nil {
			t.Errorf("ParseResponse(%q) succeeded", body)
		}
	}
	if looksLikeEnvelope([]byte("-----BEGIN CERTIFICATE REQUEST-----")) {
		t.Error("a PEM export was taken for an envelope")
	}
	if !looksLikeEnvelope([]byte("<?xml version=\"1.0\"?>\n<response status=\"error\"/>")) {
		t.Error("an envelope with an XML declaration was not recognized")
	}
}

func TestXPathLiteralAndEscape(t *testing.T) {
	for in, want := range map[string]string{"web": "'web'", "it's": `"it's"`, `say "hi"`: `'say "hi"'`} {
		got, err := XPathLiteral(in)
		if err != nil || got != want {
			t.Errorf("XPathLiteral(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := XPathLiteral(`it's "both"`); err == nil {
		t.Error("a name with both quote kinds was accepted")
	}
	if got := Escape(`AT&T <Labs> 'x' "y"`); got != "AT&amp;T &lt;Labs&gt; &#39;x&#39; &#34;y&#34;" {
		t.Errorf("Escape = %q", got)
	}
}

func TestJobDetailsShapes(t *testing.T) {
	r, err := ParseResponse([]byte(`<response status="success"><result><job><id>5</id><status>FIN</status><result>FAIL</result>` +
		`<details><line><![CDATA[Validation Error:]]></line><line><newjob><newmsg>profile -> x is invalid</newmsg></newjob></line></details>` +
		`<warnings><line>w1</line></warnings></job></result></response>`))
	if err != nil {
		t.Fatal(err)
	}
	job := r.Result.Child("job")
	if got := texts(job.Child("details")); !slices.Equal(got, []string{"Validation Error:", "profile -> x is invalid"}) {
		t.Errorf("details %q", got)
	}
	if got := texts(job.Child("warnings")); !slices.Equal(got, []string{"w1"}) {
		t.Errorf("warnings %q", got)
	}
}
