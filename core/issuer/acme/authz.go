package acme

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certfleet/certfleet/core/issuer"
)

const challengeDNS01 = "dns-01"

// authzPollMax caps the adaptive wait between polls of an authorization being validated.
const authzPollMax = 5 * time.Second

// pendingAuthz is an authorization that still needs its dns-01 challenge answered or validated.
type pendingAuthz struct {
	url       string
	authz     legoacme.Authorization
	challenge legoacme.Challenge
}

func (p pendingAuthz) name() string {
	if p.authz.Wildcard {
		return "*." + p.authz.Identifier.Value
	}
	return p.authz.Identifier.Value
}

// authorize makes every authorization of the order valid: valid ones are left alone, pending
// ones are answered through DNS-01 (never HTTP-01 or TLS-ALPN-01: certfleet cannot serve those
// from a network device), and the CA's validation is awaited.
func (i *Issuer) authorize(ctx context.Context, core *api.Core, obs *callObserver, authzURLs []string) error {
	var pending []pendingAuthz
	for _, u := range authzURLs {
		a, err := core.Authorizations.Get(ctx, u)
		if err != nil {
			return classify("get authorization", err)
		}
		switch a.Status {
		case legoacme.StatusValid:
		case legoacme.StatusPending:
			pending = append(pending, pendingAuthz{url: u, authz: a})
		default:
			return &orderFailure{fmt.Sprintf("the authorization for %s %s is %s%s", a.Identifier.Type, a.Identifier.Value, a.Status, challengeErrors(a))}
		}
	}
	if len(pending) == 0 {
		return nil
	}

	for n, p := range pending {
		ch, ok := findChallenge(p.authz, challengeDNS01)
		if !ok {
			return configError("authorize", "issuer %q: the CA needs %s %s validated and offers only %s; answering HTTP-01 or TLS-ALPN-01 on a network device is out of scope for certfleet: use DNS names validated through DNS-01 (set dns.provider) or have the CA pre-validate the name",
				i.cfg.Name, p.authz.Identifier.Type, p.name(), offered(p.authz))
		}
		if i.dns == nil {
			return configError("authorize", "issuer %q: the CA needs %s validated and no DNS-01 provider is configured: set dns.provider (and dns.settings) for this issuer, or have the CA pre-validate the domain (e.g. Sectigo SCM domain validation)",
				i.cfg.Name, p.name())
		}
		pending[n].challenge = ch
	}

	// A provider that replaces the whole TXT record set cannot hold two challenges for the same
	// name at once (a wildcard and its base name): solve one authorization at a time.
	if i.dns.sequential() {
		for _, p := range pending {
			if err := i.solve(ctx, core, obs, []pendingAuthz{p}); err != nil {
				return err
			}
		}
		return nil
	}
	return i.solve(ctx, core, obs, pending)
}

// solve presents the TXT records, waits until they are visible, answers the challenges, waits for
// the CA's verdict and removes the records.
func (i *Issuer) solve(ctx context.Context, core *api.Core, obs *callObserver, batch []pendingAuthz) error {
	type presented struct{ domain, token, keyAuth string }
	var records []presented
	defer func() {
		// Clean up even when ctx has ended, within a bound of its own.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.timeouts.HTTP)
		defer cancel()
		for _, r := range records {
			if err := i.dns.provider.CleanUp(cctx, r.domain, r.token, r.keyAuth); err != nil {
				i.log.Warn("could not remove the DNS-01 record", "issuer", i.cfg.Name, "domain", r.domain, "error", err)
			}
		}
	}()

	var answer []pendingAuthz
	for _, p := range batch {
		// A challenge already answered (by a run that stopped while the CA validated) is only awaited.
		if p.challenge.Status != legoacme.StatusPending {
			continue
		}
		keyAuth, err := core.GetKeyAuthorization(p.challenge.Token)
		if err != nil {
			return fmt.Errorf("key authorization for %s: %w", p.name(), err)
		}
		domain := p.authz.Identifier.Value
		if err := i.dns.provider.Present(ctx, domain, p.challenge.Token, keyAuth); err != nil {
			return &Error{Op: "present DNS-01 record", retryable: true, cause: err,
				Detail: fmt.Sprintf("issuer %q: DNS provider %s could not create the TXT record for %s: %v", i.cfg.Name, i.cfg.DNS.Provider, p.name(), err)}
		}
		records = append(records, presented{domain, p.challenge.Token, keyAuth})
		answer = append(answer, p)
	}
	for _, r := range records {
		if err := i.dns.waitPropagation(ctx, r.domain, r.keyAuth); err != nil {
			return &Error{Op: "DNS-01 propagation", retryable: true, cause: err,
				Detail: fmt.Sprintf("issuer %q: %v", i.cfg.Name, err)}
		}
	}
	for _, p := range answer {
		if _, err := core.Challenges.New(ctx, p.challenge.URL); err != nil {
			return classify("answer challenge for "+p.name(), err)
		}
	}
	for _, p := range batch {
		if err := i.waitAuthz(ctx, core, obs, p); err != nil {
			return err
		}
	}
	return nil
}

// waitAuthz polls an authorization until the CA has decided, within Timeouts.Validation.
func (i *Issuer) waitAuthz(ctx context.Context, core *api.Core, obs *callObserver, p pendingAuthz) error {
	deadline := time.Now().Add(i.timeouts.Validation)
	// The DNS-01 records stay up until the CA has decided, so this waits inside the Collect.
	poll := issuer.NewPollSchedule(0, authzPollMax)
	for {
		a, err := core.Authorizations.Get(ctx, p.url)
		if err != nil {
			return classify("get authorization", err)
		}
		switch a.Status {
		case legoacme.StatusValid:
			return nil
		case legoacme.StatusPending:
		default:
			return &orderFailure{fmt.Sprintf("the CA could not validate %s: authorization %s%s", p.name(), a.Status, challengeErrors(a))}
		}
		wait := max(obs.retryAfterFor(p.url), i.timeouts.PollInterval)
		if wait == 0 {
			wait = poll.NextBackOff()
		}
		if time.Now().Add(wait).After(deadline) {
			return &Error{Op: "validate " + p.name(), retryable: true,
				Detail: fmt.Sprintf("the CA has not validated %s within %s (timeouts.validation)", p.name(), i.timeouts.Validation)}
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return classify("wait for validation", err)
		}
	}
}

func findChallenge(a legoacme.Authorization, typ string) (legoacme.Challenge, bool) {
	for _, c := range a.Challenges {
		if c.Type == typ {
			return c, true
		}
	}
	return legoacme.Challenge{}, false
}

func offered(a legoacme.Authorization) string {
	var types []string
	for _, c := range a.Challenges {
		types = append(types, c.Type)
	}
	slices.Sort(types)
	if len(types) == 0 {
		return "no challenge"
	}
	return strings.Join(types, ", ")
}

func challengeErrors(a legoacme.Authorization) string {
	var msgs []string
	for _, c := range a.Challenges {
		if c.Error != nil {
			msgs = append(msgs, c.Type+": "+describeProblem(c.Error))
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}
