package acme

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Submit places a new order for the request's names and returns its reference as soon as the
// CA has created it; authorizations, finalization and download happen in Collect. When the
// newOrder request may have reached the CA but its answer was lost, the error wraps
// issuer.ErrOutcomeUnknown.
func (i *Issuer) Submit(ctx context.Context, req issuer.Request) (issuer.OrderRef, error) {
	const op = "new order"
	opts, err := parseOptions(req.Options, true)
	if err != nil {
		return "", issuer.NotPlaced(configError(op, "certificate %q: %v", req.CertificateName, err))
	}
	if opts.replaces == "" && req.PreviousCertPEM != "" {
		// A renewal names the certificate it replaces (RFC 9773), so the CA can link them.
		if opts.replaces, err = replacesCertID(req.PreviousCertPEM); err != nil {
			return "", issuer.NotPlaced(configError(op, "certificate %q: previous certificate: %v", req.CertificateName, err))
		}
	}
	csr, err := parseCSR(req.CSRPEM)
	if err != nil {
		return "", issuer.NotPlaced(configError(op, "certificate %q: %v", req.CertificateName, err))
	}
	names, err := orderNames(req, csr)
	if err != nil {
		return "", issuer.NotPlaced(configError(op, "certificate %q: %v", req.CertificateName, err))
	}

	ctx, obs := withObserver(ctx)
	var (
		order       legoacme.ExtendedOrder
		newOrderURL string
	)
	err = i.withAccount(ctx, func(core *api.Core) error {
		newOrderURL = core.GetDirectory().NewOrderURL
		var err error
		order, err = core.Orders.New(ctx, names, &api.OrderOptions{Profile: opts.profile, ReplacesCertID: opts.replaces})
		if err != nil && opts.replaces != "" && problemOf(err) != nil && !isProblem(err, problemRateLimited) {
			// The CA refused the order because of the replaces field (it no longer knows the
			// replaced certificate, or has it linked already). A refusal creates no order, so
			// ordering again without it places exactly one; ARI linkage is only lost for this one.
			i.log.Warn("CA refused the order's replaces field; ordering without it", "issuer", i.cfg.Name,
				"certificate", req.CertificateName, "error", err.Error())
			order, err = core.Orders.New(ctx, names, &api.OrderOptions{Profile: opts.profile})
		}
		return err
	})
	if err != nil {
		var own *Error
		if problemOf(err) == nil && !errors.As(err, &own) && obs.wasPosted(newOrderURL) {
			return "", &Error{Op: op, Detail: fmt.Sprintf("certificate %q: %v", req.CertificateName, err),
				cause: fmt.Errorf("%w: %w", issuer.ErrOutcomeUnknown, err)}
		}
		if pd := problemOf(err); (pd != nil && pd.HTTPStatus < 500) || !obs.wasPosted(newOrderURL) {
			// A refusal (a problem document) creates no order, and a request never posted none.
			return "", issuer.NotPlaced(withRateLimitWait(obs, classify(op, err)))
		}
		return "", withRateLimitWait(obs, classify(op, err))
	}
	if order.Location == "" {
		return "", &Error{Op: op, Detail: "the CA created an order but gave no order URL",
			cause: issuer.ErrOutcomeUnknown}
	}
	preferred := opts.preferredChain
	ref, err := orderRef{OrderURL: order.Location, CSR: csr.Raw, PreferredChain: preferred}.encode()
	if err != nil {
		return "", fmt.Errorf("encode order reference: %w", err)
	}
	i.log.Info("ACME order placed", "issuer", i.cfg.Name, "certificate", req.CertificateName,
		"order", order.Location, "status", order.Status, "replaces", opts.replaces)
	return ref, nil
}

// Collect moves the order on from where the CA says it stands: answers pending authorizations,
// finalizes a ready order (only then: an order already processing or valid is never finalized
// again) and downloads the chain once it is valid. It does not wait for a processing order: it
// reports Pending at once, with the CA's Retry-After (at least timeouts.poll_interval when that is
// set), and the caller collects again after that, or on its own schedule when it is zero.
func (i *Issuer) Collect(ctx context.Context, ref issuer.OrderRef) (issuer.Result, error) {
	r, err := decodeRef(ref)
	if err != nil {
		return issuer.Result{}, err
	}
	csr, err := x509.ParseCertificateRequest(r.CSR)
	if err != nil {
		return issuer.Result{}, &Error{Op: "order reference", Detail: fmt.Sprintf("the CSR in the reference does not parse: %v", err)}
	}
	defer i.lockOrder(r.OrderURL)()
	ctx, obs := withObserver(ctx)
	var res issuer.Result
	err = i.withAccount(ctx, func(core *api.Core) error {
		var err error
		res, err = i.drive(ctx, core, obs, r, csr)
		return err
	})
	var failed *orderFailure
	if errors.As(err, &failed) {
		return issuer.Result{State: issuer.Failed, Message: failed.msg}, nil
	}
	return res, withRateLimitWait(obs, err)
}

// issuanceWaitInCollect bounds how long Collect looks again at an order it has just finalized
// when the CA gave no Retry-After, holding the CA account's slot: CAs usually issue within
// moments of the finalize (Pebble within milliseconds), and without it the order waits for the
// engine's next collect, whose schedule has grown while the challenges were validated (with
// Pebble's default VA sleep: 7.8 s after a finalize, measured; see docs/performance.md).
const issuanceWaitInCollect = 200 * time.Millisecond

// orderFailure means the order will never issue.
type orderFailure struct{ msg string }

func (f *orderFailure) Error() string { return f.msg }

func (i *Issuer) drive(ctx context.Context, core *api.Core, obs *callObserver, r orderRef, csr *x509.CertificateRequest) (issuer.Result, error) {
	authorized, finalized := false, false
	// After a finalize the CA gave no Retry-After for, the order is looked at again a few times
	// within a short time (see issuanceWaitInCollect) before Collect answers Pending.
	var quickUntil time.Time
	quick := issuer.NewPollSchedule(max(authzPollFirst, i.timeouts.PollInterval), authzPollMax)
	for {
		order, err := core.Orders.Get(ctx, r.OrderURL)
		if err != nil {
			if pd := problemOf(err); (pd != nil && pd.HTTPStatus == http.StatusNotFound) || obs.statusFor(r.OrderURL) == http.StatusNotFound {
				return issuer.Result{}, &orderFailure{"the order no longer exists at the CA (expired or deleted); a new order is needed"}
			}
			return issuer.Result{}, classify("get order", err)
		}
		if order.Status != legoacme.StatusPending {
			// The CA has decided on every authorization: no DNS-01 record of this order is
			// needed any more (the order may have become ready before this process saw an
			// authorization valid).
			for _, u := range order.Authorizations {
				i.cleanUpRecord(ctx, u)
			}
		}
		switch order.Status {
		case legoacme.StatusPending:
			if !authorized {
				if err := i.authorize(ctx, core, obs, order.Authorizations); err != nil {
					var wait *errAuthzPending
					if errors.As(err, &wait) {
						// The CA is validating: collect again later, holding nothing.
						return i.pending(wait.retryAfter), nil
					}
					return issuer.Result{}, err
				}
				authorized = true
				continue
			}
			// Authorizations are valid; the CA has not caught up yet.
		case legoacme.StatusReady:
			if finalized {
				break // still ready after our finalize: give the CA time
			}
			finalized = true
			status, err := i.finalize(ctx, core, order.Finalize, csr)
			if err != nil {
				return issuer.Result{}, err
			}
			if status != legoacme.StatusProcessing {
				continue
			}
			// The answer to finalize says when to look again.
			if ra := max(obs.retryAfterFor(order.Finalize), i.timeouts.PollInterval); ra > 0 {
				return i.pending(ra), nil
			}
			quickUntil = time.Now().Add(issuanceWaitInCollect)
			if wait := quick.NextBackOff(); time.Now().Add(wait).Before(quickUntil) {
				if err := sleepCtx(ctx, wait); err != nil {
					return issuer.Result{}, classify("wait for issuance", err)
				}
				continue
			}
			return i.pending(0), nil
		case legoacme.StatusProcessing:
			if ra := obs.retryAfterFor(r.OrderURL); ra == 0 && !quickUntil.IsZero() {
				if wait := quick.NextBackOff(); time.Now().Add(wait).Before(quickUntil) {
					if err := sleepCtx(ctx, wait); err != nil {
						return issuer.Result{}, classify("wait for issuance", err)
					}
					continue
				}
			}
		case legoacme.StatusValid:
			return i.download(ctx, core, order.Certificate, r, csr)
		case legoacme.StatusInvalid:
			msg := "the CA marked the order invalid"
			if order.Error != nil {
				msg += ": " + describeProblem(order.Error)
			}
			return issuer.Result{}, &orderFailure{msg}
		default:
			return issuer.Result{}, &orderFailure{fmt.Sprintf("the order is %q at the CA", order.Status)}
		}
		return i.pending(obs.retryAfterFor(r.OrderURL)), nil
	}
}

// pending is the answer for an order the CA is still working on: collect again after the CA's
// Retry-After, and not before timeouts.poll_interval when one is configured; zero leaves the
// schedule to the caller.
func (i *Issuer) pending(retryAfter time.Duration) issuer.Result {
	return issuer.Result{State: issuer.Pending, RetryAfter: max(retryAfter, i.timeouts.PollInterval)}
}

// finalize sends the CSR and returns the order's status from the CA's answer ("" when the
// order must simply be fetched again).
func (i *Issuer) finalize(ctx context.Context, core *api.Core, url string, csr *x509.CertificateRequest) (string, error) {
	order, err := core.Orders.UpdateForCSR(ctx, url, csr.Raw)
	switch {
	case err == nil:
		return order.Status, nil
	case isProblem(err, problemOrderNotReady):
		// Someone else finalized it, or an authorization changed: look again.
		return "", nil
	}
	e := classify("finalize order", err)
	if e.ProblemType != "" && !e.retryable {
		return "", &orderFailure{"the CA refused to finalize the order: " + e.Detail}
	}
	// Transient or unanswered: the next Collect reads the order's state first, so a finalize the
	// CA did receive is not sent again.
	return "", e
}

// download fetches the issued chain, checks it is for the CSR's key and picks the preferred chain.
func (i *Issuer) download(ctx context.Context, core *api.Core, certURL string, r orderRef, csr *x509.CertificateRequest) (issuer.Result, error) {
	const op = "download certificate"
	if certURL == "" {
		return issuer.Result{}, &Error{Op: op, Detail: "the order is valid but has no certificate URL", retryable: true}
	}
	preferred := r.PreferredChain
	if preferred == "" {
		preferred = i.cfg.PreferredChain
	}
	var bundles [][]byte
	if preferred == "" {
		raw, err := core.Certificates.Get(ctx, certURL, true)
		if err != nil {
			return issuer.Result{}, classify(op, err)
		}
		bundles = append(bundles, raw.Cert)
	} else {
		all, err := core.Certificates.GetAll(ctx, certURL, true)
		if err != nil {
			return issuer.Result{}, classify(op, err)
		}
		urls := make([]string, 0, len(all))
		for u := range all {
			if u != certURL {
				urls = append(urls, u)
			}
		}
		slices.Sort(urls)
		for _, u := range append([]string{certURL}, urls...) {
			if all[u] != nil {
				bundles = append(bundles, all[u].Cert)
			}
		}
	}

	var chains [][]*x509.Certificate
	for n, b := range bundles {
		chain, err := parseChain(b)
		if err != nil {
			if n == 0 {
				return issuer.Result{}, &Error{Op: op, Detail: fmt.Sprintf("the CA's certificate does not parse: %v", err), retryable: true}
			}
			i.log.Warn("skipping an alternate chain that does not parse", "issuer", i.cfg.Name, "error", err)
			continue
		}
		chains = append(chains, chain)
	}
	leaf := chains[0][0]
	if !publicKeysEqual(leaf.PublicKey, csr.PublicKey) {
		return issuer.Result{}, &orderFailure{"the CA issued a certificate for a different public key than the CSR's"}
	}

	chosen, found := pickChain(chains, preferred)
	if preferred != "" && !found {
		i.log.Warn("no chain matches the preferred chain; using the CA's default", "issuer", i.cfg.Name,
			"preferred_chain", preferred, "offered", describeChains(chains))
	}
	res := issuer.Result{State: issuer.Issued, CertPEM: encodeCert(chosen[0])}
	for _, c := range chosen[1:] {
		res.ChainPEM = append(res.ChainPEM, encodeCert(c))
	}
	return res, nil
}

// pickChain returns the first chain (the CA's default first, then its alternates) for the same
// leaf that matches preferred, or the default chain and false when none does.
func pickChain(chains [][]*x509.Certificate, preferred string) ([]*x509.Certificate, bool) {
	if preferred != "" {
		for _, c := range chains {
			if c[0].Equal(chains[0][0]) && chainMatches(c, preferred) {
				return c, true
			}
		}
	}
	return chains[0], false
}

// chainMatches: the chain's topmost certificate (the last one the CA sent) is issued by a CA
// whose Common Name is cn. This is the rule of certbot (crypto_util.find_chain_with_issuer, after
// certbot#8577) and lego (certificate.hasPreferredChain): names of certificates inside the chain
// do not count, so a cross-signed intermediate named like a root cannot pull in the long chain.
func chainMatches(chain []*x509.Certificate, cn string) bool {
	return chain[len(chain)-1].Issuer.CommonName == cn
}

func describeChains(chains [][]*x509.Certificate) string {
	var tops []string
	for _, c := range chains {
		tops = append(tops, fmt.Sprintf("%q", c[len(c)-1].Issuer.CommonName))
	}
	return strings.Join(tops, ", ")
}

// parseChain parses a PEM bundle, leaf first, each certificate issued by the next.
func parseChain(bundle []byte) ([]*x509.Certificate, error) {
	chain, err := sdk.ParseCertificatesPEM(string(bundle))
	if err != nil {
		return nil, fmt.Errorf("the CA's answer: %w", err)
	}
	for n := 0; n+1 < len(chain); n++ {
		if err := chain[n].CheckSignatureFrom(chain[n+1]); err != nil {
			return nil, fmt.Errorf("certificate %d (%s) is not issued by the next one (%s): the chain is not in order",
				n, chain[n].Subject.CommonName, chain[n+1].Subject.CommonName)
		}
	}
	return chain, nil
}

func encodeCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(x crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func parseCSR(csrPEM string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || !strings.Contains(block.Type, "CERTIFICATE REQUEST") {
		return nil, errors.New("the CSR is not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature: %w", err)
	}
	return csr, nil
}

// orderNames returns the order's identifiers (DNS names lower-cased, IPs canonical, no
// duplicates), which must be exactly the CSR's SANs: an ACME CA issues for the order's
// identifiers and refuses a CSR naming anything else.
func orderNames(req issuer.Request, csr *x509.CertificateRequest) ([]string, error) {
	if len(req.EmailAddresses) > 0 {
		return nil, errors.New("ACME certificates name only DNS names and IP addresses (RFC 8555, RFC 8738); remove the e-mail SANs or use another issuer")
	}
	var dns, ips []string
	for _, n := range req.DNSNames {
		dns = append(dns, strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), ".")))
	}
	for _, s := range req.IPAddresses {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return nil, fmt.Errorf("IP address SAN %q does not parse", s)
		}
		ips = append(ips, ip.String())
	}
	slices.Sort(dns)
	dns = slices.Compact(dns)
	slices.Sort(ips)
	ips = slices.Compact(ips)
	if len(dns)+len(ips) == 0 {
		return nil, errors.New("no DNS name or IP address to order a certificate for")
	}
	if cn := strings.ToLower(strings.TrimSpace(req.CommonName)); cn != "" {
		if ip := net.ParseIP(cn); ip != nil {
			cn = ip.String()
		}
		if !slices.Contains(dns, cn) && !slices.Contains(ips, cn) {
			return nil, fmt.Errorf("common name %q is not one of the subject alternative names; ACME CAs issue only for the order's names, so add it to the certificate's SANs", req.CommonName)
		}
	}

	var csrDNS, csrIPs []string
	for _, n := range csr.DNSNames {
		csrDNS = append(csrDNS, strings.ToLower(n))
	}
	for _, ip := range csr.IPAddresses {
		csrIPs = append(csrIPs, ip.String())
	}
	slices.Sort(csrDNS)
	csrDNS = slices.Compact(csrDNS)
	slices.Sort(csrIPs)
	csrIPs = slices.Compact(csrIPs)
	if !slices.Equal(dns, csrDNS) || !slices.Equal(ips, csrIPs) {
		return nil, fmt.Errorf("the CSR's SANs (DNS %v, IP %v) differ from the requested names (DNS %v, IP %v)", csrDNS, csrIPs, dns, ips)
	}
	return append(dns, ips...), nil
}
