package paloaltopanos_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	paloaltopanos "github.com/certfleet/certfleet/plugins/paloalto-panos"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// generalize replaces the parts of a call that change from run to run (new certificate names,
// CA certificate names, job ids) so the sequence can be compared.
var (
	caNamePattern = regexp.MustCompile(`ca-[A-Za-z0-9_-]+-[0-9a-f]{10}`)
	jobPattern    = regexp.MustCompile(`<id>[0-9]+</id>`)
	csrElement    = regexp.MustCompile(`<request><certificate><generate>.*</generate></certificate></request>`)
)

func generalize(s, newName, oldName string) string {
	if oldName != "" {
		s = strings.ReplaceAll(s, oldName, "OLD")
	}
	s = strings.ReplaceAll(s, newName, "NEW")
	s = caNamePattern.ReplaceAllString(s, "CA")
	s = jobPattern.ReplaceAllString(s, "<id>N</id>")
	return csrElement.ReplaceAllString(s, "<request><certificate><generate>…</generate></certificate></request>")
}

// The calls the plugin makes, in order, for an enrollment (a profile with the device's factory
// certificate gets a new one) and a renewal (the next certificate, then cleanup of the one it
// replaces). The report of this package lists them; this test keeps that list true.
func TestCallSequence(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, sdk.Options{"commit_admin": "certfleet"})
	p := paloaltopanos.New()
	ca := newCA(t)

	run := func(old string) (string, []string) {
		sim.ResetCalls()
		got := enroll(t, p, tgt, ca, csrRequest("www.example"))
		bound, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: got.certRef, KeyRef: got.keyRef, Bindings: []sdk.Binding{webTLS}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{Description: "certfleet: renew www"}); err != nil {
			t.Fatal(err)
		}
		if old != "" {
			if len(bound.PreviousCertRefs) != 1 || bound.PreviousCertRefs[0] != old {
				t.Fatalf("PreviousCertRefs %v, want [%s]", bound.PreviousCertRefs, old)
			}
			res, err := p.Cleanup(ctxT(t), tgt, []sdk.ObjectRef{{CertRef: old, KeyRef: old}})
			if err != nil || !res[0].Removed {
				t.Fatalf("Cleanup: %+v %v", res, err)
			}
		}
		var calls []string
		for _, c := range sim.Calls() {
			line := generalize(c.String(), got.certRef, old)
			// Job polls repeat as long as the job runs; keep one.
			if len(calls) > 0 && calls[len(calls)-1] == line {
				continue
			}
			calls = append(calls, line)
		}
		return got.certRef, calls
	}

	const (
		certs    = "/config/shared/certificate"
		vsysCert = "/config/devices/entry[@name='localhost.localdomain']/vsys/entry[@name='vsys1']/certificate"
		profile  = "/config/shared/ssl-tls-service-profile/entry[@name='web-tls']"
		gen      = "<request><certificate><generate>…</generate></certificate></request>"
		poll     = "op <show><jobs><id>N</id></jobs></show>"
		commit   = "commit/partial <commit><description>certfleet: renew www</description><partial><admin><member>certfleet</member></admin></partial></commit>"
	)
	enrollment := []string{
		// GenerateCSR
		"keygen user=certfleet",
		"op " + gen,
		"config/get " + certs + "/entry[@name='NEW']",
		"export category=certificate certificate-name=NEW format=pkcs10 include-key=no",
		// ImportCert
		"config/get " + certs + "/entry[@name='NEW']",
		"import category=certificate certificate-name=NEW format=pem +file",
		"config/get " + certs + "/entry[@name='NEW']",
		"config/get " + certs,
		"import category=certificate certificate-name=CA format=pem +file",
		// Bind
		"config/get " + certs + "/entry[@name='NEW']",
		"config/get " + profile,
		"config/set " + profile + " <certificate>NEW</certificate>",
		"config/get " + certs + "/entry[@name='sim-factory-web']",
		// Commit
		commit,
		poll,
		"config/show " + certs,
		"config/show " + vsysCert,
		"config/get /config/shared/ssl-tls-service-profile",
		"config/get /config/devices/entry[@name='localhost.localdomain']/vsys/entry[@name='vsys1']/ssl-tls-service-profile",
	}
	first, calls := run("")
	checkCalls(t, "enrollment", calls, enrollment)

	renewal := []string{
		// GenerateCSR, ImportCert (the CA certificate is already there: no import), Bind, Commit
		"op " + gen,
		"config/get " + certs + "/entry[@name='NEW']",
		"export category=certificate certificate-name=NEW format=pkcs10 include-key=no",
		"config/get " + certs + "/entry[@name='NEW']",
		"import category=certificate certificate-name=NEW format=pem +file",
		"config/get " + certs + "/entry[@name='NEW']",
		"config/get " + certs,
		"config/get " + certs + "/entry[@name='NEW']",
		"config/get " + profile,
		"config/set " + profile + " <certificate>NEW</certificate>",
		"config/get " + certs + "/entry[@name='OLD']",
		commit,
		poll,
		"config/show " + certs,
		"config/show " + vsysCert,
		"config/get /config/shared/ssl-tls-service-profile",
		"config/get /config/devices/entry[@name='localhost.localdomain']/vsys/entry[@name='vsys1']/ssl-tls-service-profile",
	}
	_, calls = run(first)
	// Cleanup reads the whole picture (Inventory's view), then deletes: compare up to the
	// commit poll exactly and check Cleanup's tail by its delete.
	checkCalls(t, "renewal", calls[:min(len(calls), len(renewal))], renewal)
	// Cleanup's tail: candidate reads, one delete of the old entry, then the commit of that
	// deletion (cleanup_commit, on by default), so nothing is left uncommitted.
	tail := calls[min(len(calls), len(renewal)):]
	del := slices.Index(tail, "config/delete "+certs+"/entry[@name='OLD']")
	if del < 0 {
		t.Fatalf("Cleanup calls %q: want reads, then one config/delete of the old entry", tail)
	}
	for _, c := range tail[:del] {
		if !strings.HasPrefix(c, "config/get ") {
			t.Errorf("Cleanup made %q before its delete; want only candidate reads", c)
		}
	}
	if after := tail[del+1:]; len(after) < 2 || !strings.Contains(after[0], "<description>certfleet: remove superseded certificates</description>") || after[1] != poll {
		t.Errorf("Cleanup calls after the delete %q: want the commit of the deletion and its job poll", after)
	}
	if sim.PendingChanges() != 0 {
		t.Errorf("%d changes left uncommitted after Cleanup", sim.PendingChanges())
	}
	t.Logf("renewal calls:\n%s", strings.Join(calls, "\n"))
}

func checkCalls(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s calls:\n%s\n\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
