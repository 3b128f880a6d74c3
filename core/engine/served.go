package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// servedEndpoints is where c is served: what the plugin reported for its bindings and the
// configured verify endpoint, each with the server name to send.
func servedEndpoints(c Certificate, pf preflight) []sdk.ServedEndpoint {
	var out []sdk.ServedEndpoint
	seen := map[sdk.ServedEndpoint]bool{}
	add := func(ep sdk.ServedEndpoint) {
		if ep.ServerName == "" {
			ep.ServerName = defaultServerName(c)
		}
		if ep.Address != "" && !seen[ep] {
			seen[ep] = true
			out = append(out, ep)
		}
	}
	keys := make([]string, 0, len(pf.endpoints))
	for k := range pf.endpoints {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, ep := range pf.endpoints[k] {
			add(ep)
		}
	}
	if c.Verify != nil {
		add(*c.Verify)
	}
	return out
}

func defaultServerName(c Certificate) string {
	if c.Subject.CommonName != "" && !strings.Contains(c.Subject.CommonName, "*") {
		return c.Subject.CommonName
	}
	for _, n := range c.SANs.DNSNames {
		if !strings.Contains(n, "*") {
			return n
		}
	}
	return ""
}

// checkServedOnce connects to ep as a client would and checks that it serves want, with a chain
// that verifies to the top of the chain the CA issued (its root, or the last intermediate it
// sent, which the endpoint must then send too).
func checkServedOnce(ctx context.Context, ep sdk.ServedEndpoint, want *x509.Certificate, issued []*x509.Certificate, now time.Time) error {
	// The chain is captured as soon as the server sends it, before the client would have to
	// present a certificate: an endpoint that requires client certificates (mutual TLS) ends the
	// handshake after that, and what it serves is still known.
	var sentRaw [][]byte
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{
		ServerName: ep.ServerName,
		MinVersion: tls.VersionTLS12,
		// The handshake only collects what is served; it is verified below against the issuer's
		// root, stricter than any system trust store would be.
		InsecureSkipVerify: true, //nolint:gosec // verified by hand below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			sentRaw = raw
			return nil
		},
	}}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := dialer.DialContext(cctx, "tcp", ep.Address)
	if err == nil {
		_ = conn.Close()
	} else if len(sentRaw) == 0 {
		return fmt.Errorf("TLS handshake with %s: %w", endpointName(ep), err)
	}
	var peer []*x509.Certificate
	for _, raw := range sentRaw {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("%s sent a certificate that does not parse: %w", endpointName(ep), err)
		}
		peer = append(peer, c)
	}
	if len(peer) == 0 {
		return fmt.Errorf("%s sent no certificate", endpointName(ep))
	}
	if !peer[0].Equal(want) {
		return fmt.Errorf("%s serves serial %s (%s, valid until %s), not the deployed serial %s: a stale certificate",
			endpointName(ep), sdk.Describe(peer[0]).Serial, peer[0].Subject, peer[0].NotAfter.UTC().Format("2006-01-02"), sdk.Describe(want).Serial)
	}
	if len(issued) == 0 {
		return nil
	}
	anchor := issued[len(issued)-1]
	sent := peer[1:]
	selfSigned := bytes.Equal(anchor.RawIssuer, anchor.RawSubject) && anchor.CheckSignatureFrom(anchor) == nil
	if !selfSigned && !containsCert(sent, anchor) {
		return fmt.Errorf("%s serves the right leaf but not the intermediate %q: clients that lack it cannot build the chain (%d chain certificates sent)",
			endpointName(ep), anchor.Subject.String(), len(sent))
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	inter := x509.NewCertPool()
	for _, c := range sent {
		inter.AddCert(c)
	}
	if _, err := peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("%s serves the right leaf, but the chain it sends (%d certificates) does not verify to %q: %v; are the intermediates installed and linked?",
			endpointName(ep), len(sent), anchor.Subject.String(), err)
	}
	return nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

func endpointName(ep sdk.ServedEndpoint) string {
	if ep.ServerName == "" {
		return ep.Address
	}
	return ep.Address + " (SNI " + ep.ServerName + ")"
}

// checkServed checks every endpoint, trying again a few times while an endpoint is wrong, since a
// device's data plane may take a moment to pick up a commit. It returns the check to record.
func (e *Engine) checkServed(ctx context.Context, endpoints []sdk.ServedEndpoint, certPEM string, chainPEM []string) state.ServedCheck {
	check := state.ServedCheck{At: e.opts.Now().UTC()}
	for _, ep := range endpoints {
		check.Endpoints = append(check.Endpoints, endpointName(ep))
	}
	want, err := sdk.ParseCertificatePEM(certPEM)
	if err != nil {
		check.Detail = "recorded certificate: " + err.Error()
		return check
	}
	var issued []*x509.Certificate
	for _, p := range chainPEM {
		c, err := sdk.ParseCertificatePEM(p)
		if err != nil {
			check.Detail = "recorded chain: " + err.Error()
			return check
		}
		issued = append(issued, c)
	}
	var problems []string
	for _, ep := range endpoints {
		var err error
		for attempt := 0; attempt < e.opts.VerifyAttempts; attempt++ {
			if attempt > 0 {
				select {
				case <-ctx.Done():
					err = errors.Join(err, ctx.Err())
				case <-time.After(e.opts.VerifyWait):
				}
				if ctx.Err() != nil {
					break
				}
			}
			if err = checkServedOnce(ctx, ep, want, issued, e.opts.Now()); err == nil {
				break
			}
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		check.Detail = strings.Join(problems, "; ")
		return check
	}
	check.OK = true
	check.Detail = fmt.Sprintf("serial %s with a chain to its root served at %s", sdk.Describe(want).Serial, strings.Join(check.Endpoints, ", "))
	return check
}

// VerifyRow is one certificate's served check.
type VerifyRow struct {
	Certificate string             `json:"certificate"`
	Device      string             `json:"device"`
	Check       *state.ServedCheck `json:"check,omitempty"`
	// Skipped says why nothing was checked (nothing deployed, no endpoint known).
	Skipped string `json:"skipped,omitempty"`
}

// VerifyServed checks, over TLS, what the selected certificates' endpoints serve against what
// was deployed, and records each check for status. It changes nothing on any device. While a run
// holds the state lock the checks are made and reported but not recorded, so a monitoring probe
// never waits for a run nor overwrites what the run records.
func (e *Engine) VerifyServed(ctx context.Context, names []string) ([]VerifyRow, error) {
	certs, err := e.selected(names)
	if err != nil {
		return nil, err
	}
	record := true
	unlock, err := e.opts.Store.Lock(ctx)
	switch {
	case err == nil:
		defer unlock()
	case errors.Is(err, state.ErrLocked):
		record = false
		e.log.Warn("a run holds the state lock: the checks are not recorded for status", "error", err)
	default:
		return nil, err
	}
	deployments, err := e.opts.Store.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	byDevice := map[string][]Certificate{}
	for _, c := range certs {
		if _, ok := deployments[c.Name]; ok {
			byDevice[c.Device] = append(byDevice[c.Device], c)
		}
	}
	pfs := map[string]preflight{}
	for device, list := range byDevice {
		for i, pf := range e.checkDevice(ctx, device, list) {
			pfs[list[i].Name] = pf
		}
	}
	rows := make([]VerifyRow, 0, len(certs))
	for _, c := range certs {
		row := VerifyRow{Certificate: c.Name, Device: c.Device}
		d, ok := deployments[c.Name]
		if !ok {
			row.Skipped = "nothing deployed"
			rows = append(rows, row)
			continue
		}
		endpoints := servedEndpoints(c, pfs[c.Name])
		if len(endpoints) == 0 {
			row.Skipped = "no served endpoint known: the plugin reports none; set verify: {address, server_name} in the configuration"
			if pf := pfs[c.Name]; len(pf.problems) > 0 {
				row.Skipped += " (" + strings.Join(pf.problems, "; ") + ")"
			}
			rows = append(rows, row)
			continue
		}
		check := e.checkServed(ctx, endpoints, d.CertPEM, d.ChainPEM)
		row.Check = &check
		if record {
			d.ServedCheck = &check
			if err := e.opts.Store.SaveDeployment(context.WithoutCancel(ctx), d); err != nil {
				return rows, err
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// verifyServedAfterCommit checks what the batch's endpoints serve now that the device committed.
// A certificate whose check fails gets its error; with on_verify_failure: rollback its previous
// bindings are restored (and committed) and its operation steps back to imported, so the next run
// binds again; otherwise it stays deployed with the failure recorded.
func (e *Engine) verifyServedAfterCommit(ctx context.Context, dev Device, p sdk.Plugin, info sdk.Info, batch []*work) map[*work]*state.ServedCheck {
	checks := map[*work]*state.ServedCheck{}
	if len(batch) == 0 {
		return checks
	}
	certs := make([]Certificate, len(batch))
	for i, w := range batch {
		certs[i] = w.item.cert
	}
	pfs := e.checkDevice(ctx, dev.Name, certs)
	var rollback []*work
	for i, w := range batch {
		endpoints := servedEndpoints(w.item.cert, pfs[i])
		if len(endpoints) == 0 {
			continue
		}
		e.progress(w.item.cert, "checking what %s serves", strings.Join(endpointNames(endpoints), ", "))
		check := e.checkServed(ctx, endpoints, w.op.CertPEM, w.op.ChainPEM)
		checks[w] = &check
		if check.OK {
			continue
		}
		w.err = fmt.Errorf("served certificate check failed: %s", check.Detail)
		if w.item.cert.RollbackOnVerifyFailure && info.Capabilities.SupportsRollback && len(w.op.RollbackToken) > 0 {
			rollback = append(rollback, w)
		} else {
			w.err = fmt.Errorf("%w; the new certificate stays bound (on_verify_failure: keep)", w.err)
		}
	}
	if len(rollback) == 0 {
		return checks
	}
	for _, w := range rollback {
		cctx, cancel := e.callCtx(context.WithoutCancel(ctx))
		err := p.Rollback(cctx, dev.Target, w.op.RollbackToken)
		cancel()
		if err != nil {
			w.err = fmt.Errorf("%w; rolling the bindings back failed, so the new certificate stays bound: %v", w.err, e.opts.Redact(err.Error()))
			continue
		}
		w.op.Step = state.StepImported
		w.op.LastError = e.opts.Redact(w.err.Error())
		w.err = fmt.Errorf("%w; the previous bindings were restored (on_verify_failure: rollback) and the next run binds again", w.err)
		if serr := e.save(ctx, w.op); serr != nil {
			e.log.Error("cannot record the rollback", "certificate", w.op.Certificate, "error", serr)
		}
	}
	if info.Capabilities.NeedsCommit {
		cctx, cancel := e.callCtx(context.WithoutCancel(ctx))
		_, err := p.Commit(cctx, dev.Target, sdk.CommitRequest{Description: "certfleet: roll back after a failed served certificate check"})
		cancel()
		if err != nil {
			for _, w := range rollback {
				w.err = fmt.Errorf("%w; committing the rollback failed: %v", w.err, e.opts.Redact(err.Error()))
			}
		}
	}
	return checks
}

func endpointNames(eps []sdk.ServedEndpoint) []string {
	out := make([]string, 0, len(eps))
	for _, ep := range eps {
		out = append(out, endpointName(ep))
	}
	return out
}
