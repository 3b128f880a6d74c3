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

// Collect waits for the CA's verdict on answered challenges only this long, polling from
// authzPollFirst on, and holds the CA account's slot meanwhile: enough for a CA that decides at
// once (Pebble with PEBBLE_VA_NOSLEEP decides within milliseconds). A CA that takes longer
// (Pebble's VA sleeps up to 4 s by default; Let's Encrypt takes a second or more) leaves the
// order pending, and the engine collects it again later holding no slot (issue #24: waiting
// does not hold a slot). The records stay published meanwhile and are removed once the CA has
// decided. Measured with 100 certificates and Pebble's default VA sleep: a 1 s wait here kept
// the 4 slots of the account busy waiting and the run took 58 s; see docs/performance.md.
const (
	authzWaitInCollect = 200 * time.Millisecond
	authzPollFirst     = 50 * time.Millisecond
)

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

// presentedRecord is a DNS-01 record this process published and has not removed yet.
type presentedRecord struct {
	domain, token, keyAuth string
	// at is when it was published: the CA's verdict is awaited for Timeouts.Validation from then.
	at time.Time
}

// errAuthzPending: the CA has not decided on answered challenges yet; collect again after
// retryAfter (the CA's Retry-After, zero for the caller's schedule).
type errAuthzPending struct{ retryAfter time.Duration }

func (e *errAuthzPending) Error() string { return "the CA is still validating the challenges" }

// authorize makes every authorization of the order valid: valid ones are left alone, pending
// ones are answered through DNS-01 (never HTTP-01 or TLS-ALPN-01: certfleet cannot serve those
// from a network device), and the CA's verdict is awaited for at most authzWaitInCollect; after
// that it returns *errAuthzPending and a later call picks up where this one stopped.
func (i *Issuer) authorize(ctx context.Context, core *api.Core, obs *callObserver, authzURLs []string) error {
	var pending, inFlight []pendingAuthz
	for _, u := range authzURLs {
		a, err := core.Authorizations.Get(ctx, u)
		if err != nil {
			return classify("get authorization", err)
		}
		switch a.Status {
		case legoacme.StatusValid:
			i.cleanUpRecord(ctx, u)
		case legoacme.StatusPending:
			p := pendingAuthz{url: u, authz: a}
			if ch, ok := findChallenge(a, challengeDNS01); ok {
				p.challenge = ch
			}
			// Answered (by this process, or by one that stopped while the CA validated):
			// only its verdict is awaited.
			if i.hasRecord(u) || (p.challenge.Status != "" && p.challenge.Status != legoacme.StatusPending) {
				inFlight = append(inFlight, p)
				continue
			}
			pending = append(pending, p)
		default:
			i.cleanUpRecord(ctx, u)
			return &orderFailure{fmt.Sprintf("the authorization for %s %s is %s%s", a.Identifier.Type, a.Identifier.Value, a.Status, challengeErrors(a))}
		}
	}
	if len(pending) == 0 && len(inFlight) == 0 {
		return nil
	}
	if len(pending) == 0 || (i.dns != nil && i.dns.sequential() && len(inFlight) > 0) {
		// Nothing to answer now, and the CA was asked just above: collect again later.
		var retryAfter time.Duration
		for _, p := range inFlight {
			retryAfter = max(retryAfter, obs.retryAfterFor(p.url))
		}
		return &errAuthzPending{retryAfter: retryAfter}
	}

	for _, p := range pending {
		if p.challenge.URL == "" {
			return configError("authorize", "issuer %q: the CA needs %s %s validated and offers only %s; answering HTTP-01 or TLS-ALPN-01 on a network device is out of scope for certfleet: use DNS names validated through DNS-01 (set dns.provider) or have the CA pre-validate the name",
				i.cfg.Name, p.authz.Identifier.Type, p.name(), offered(p.authz))
		}
		if i.dns == nil {
			return configError("authorize", "issuer %q: the CA needs %s validated and no DNS-01 provider is configured: set dns.provider (and dns.settings) for this issuer, or have the CA pre-validate the domain (e.g. Sectigo SCM domain validation)",
				i.cfg.Name, p.name())
		}
	}

	// A provider that replaces the whole TXT record set cannot hold two challenges for the same
	// name at once (a wildcard and its base name): one authorization at a time, the next only
	// once the CA has decided on the one before.
	if i.dns.sequential() {
		for _, p := range pending {
			if err := i.answer(ctx, core, []pendingAuthz{p}); err != nil {
				return err
			}
			// Still pending: the rest are answered by a later call, after this one's verdict.
			if err := i.await(ctx, core, obs, []pendingAuthz{p}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := i.answer(ctx, core, pending); err != nil {
		return err
	}
	return i.await(ctx, core, obs, append(inFlight, pending...))
}

// answer presents the TXT records, waits until they are visible and answers the challenges. The
// records stay published until the CA has decided (see await); on an error the records of this
// batch are removed again.
func (i *Issuer) answer(ctx context.Context, core *api.Core, batch []pendingAuthz) (err error) {
	var published []pendingAuthz
	defer func() {
		if err != nil {
			for _, p := range published {
				i.cleanUpRecord(ctx, p.url)
			}
		}
	}()
	for _, p := range batch {
		keyAuth, err := core.GetKeyAuthorization(p.challenge.Token)
		if err != nil {
			return fmt.Errorf("key authorization for %s: %w", p.name(), err)
		}
		domain := p.authz.Identifier.Value
		if err := i.dns.provider.Present(ctx, domain, p.challenge.Token, keyAuth); err != nil {
			return &Error{Op: "present DNS-01 record", retryable: true, cause: err,
				Detail: fmt.Sprintf("issuer %q: DNS provider %s could not create the TXT record for %s: %v", i.cfg.Name, i.cfg.DNS.Provider, p.name(), err)}
		}
		i.addRecord(p.url, presentedRecord{domain, p.challenge.Token, keyAuth, time.Now()})
		published = append(published, p)
	}
	for _, p := range published {
		r, _ := i.record(p.url)
		if err := i.dns.waitPropagation(ctx, r.domain, r.keyAuth); err != nil {
			return &Error{Op: "DNS-01 propagation", retryable: true, cause: err,
				Detail: fmt.Sprintf("issuer %q: %v", i.cfg.Name, err)}
		}
	}
	for _, p := range published {
		if _, err := core.Challenges.New(ctx, p.challenge.URL); err != nil {
			return classify("answer challenge for "+p.name(), err)
		}
	}
	return nil
}

// await polls the answered authorizations for at most authzWaitInCollect. Each one the CA has
// decided has its record removed; an invalid one fails the order; when some are still pending
// it returns *errAuthzPending with the CA's Retry-After.
func (i *Issuer) await(ctx context.Context, core *api.Core, obs *callObserver, batch []pendingAuthz) error {
	deadline := time.Now().Add(authzWaitInCollect)
	poll := issuer.NewPollSchedule(max(authzPollFirst, i.timeouts.PollInterval), authzPollMax)
	waiting := batch
	for {
		var still []pendingAuthz
		var retryAfter time.Duration
		for _, p := range waiting {
			a, err := core.Authorizations.Get(ctx, p.url)
			if err != nil {
				return classify("get authorization", err)
			}
			switch a.Status {
			case legoacme.StatusValid:
				i.cleanUpRecord(ctx, p.url)
			case legoacme.StatusPending:
				if r, ok := i.record(p.url); ok && time.Since(r.at) > i.timeouts.Validation {
					i.cleanUpRecord(ctx, p.url)
					return &Error{Op: "validate " + p.name(), retryable: true,
						Detail: fmt.Sprintf("the CA has not validated %s within %s (timeouts.validation)", p.name(), i.timeouts.Validation)}
				}
				still = append(still, p)
				retryAfter = max(retryAfter, obs.retryAfterFor(p.url))
			default:
				i.cleanUpRecord(ctx, p.url)
				return &orderFailure{fmt.Sprintf("the CA could not validate %s: authorization %s%s", p.name(), a.Status, challengeErrors(a))}
			}
		}
		if len(still) == 0 {
			return nil
		}
		waiting = still
		wait := max(retryAfter, i.timeouts.PollInterval)
		if wait == 0 {
			wait = poll.NextBackOff()
		}
		if time.Now().Add(wait).After(deadline) {
			return &errAuthzPending{retryAfter: retryAfter}
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return classify("wait for validation", err)
		}
	}
}

func (i *Issuer) addRecord(authzURL string, r presentedRecord) {
	i.recordsMu.Lock()
	defer i.recordsMu.Unlock()
	if i.records == nil {
		i.records = map[string]presentedRecord{}
	}
	i.records[authzURL] = r
}

func (i *Issuer) record(authzURL string) (presentedRecord, bool) {
	i.recordsMu.Lock()
	defer i.recordsMu.Unlock()
	r, ok := i.records[authzURL]
	return r, ok
}

func (i *Issuer) hasRecord(authzURL string) bool {
	_, ok := i.record(authzURL)
	return ok
}

// cleanUpRecord removes the DNS-01 record published for the authorization, if this process
// published one; even when ctx has ended, within a bound of its own.
func (i *Issuer) cleanUpRecord(ctx context.Context, authzURL string) {
	i.recordsMu.Lock()
	r, ok := i.records[authzURL]
	delete(i.records, authzURL)
	i.recordsMu.Unlock()
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.timeouts.HTTP)
	defer cancel()
	if err := i.dns.provider.CleanUp(cctx, r.domain, r.token, r.keyAuth); err != nil {
		i.log.Warn("could not remove the DNS-01 record", "issuer", i.cfg.Name, "domain", r.domain, "error", err)
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
