package state

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// A deployment's record is kept in plain columns (migration 5), so that reading thousands of
// them (status, planning) decodes no JSON. Both stores have the same columns: times are text in
// RFC 3339 with nanoseconds and the time's own offset (empty for the zero time), as the JSON record
// kept them; lists are text (see encodeList); flags are 0/1 in SQLite and booleans in PostgreSQL.
// The not_after and ca_check_due columns of earlier migrations stay what SQL queries read.

// deploymentColumns are the record's columns, in the order of deploymentValues and
// scanDeployment.
var deploymentColumns = []string{
	"device", "issuer", "cert_ref", "key_ref", "chain_refs", "order_ref", "serial", "fingerprint",
	"not_before", "not_after_text", "spec_hash", "bindings", "deployed_at", "revocation_checked_at", "revoked",
	"renewal_window_start", "renewal_window_end", "renewal_info_at", "renewal_at", "renewal_info_retry_at",
	"adopted", "rebinds", "last_rebind_at", "served", "served_at", "served_ok", "served_detail", "served_endpoints",
	"ca_check_due_at",
}

// summaryColumns are the record's columns a summary reads (DeploymentSummaries): what planning,
// runs, status and retirement read of a deployment they do not work on. Reading a third of the
// columns less is a third less of the per-row cost of a fleet's summaries.
var summaryColumns = []string{
	"device", "issuer", "cert_ref", "serial", "fingerprint", "not_before", "not_after_text", "spec_hash", "revoked",
	"renewal_window_start", "renewal_window_end", "renewal_at", "rebinds", "last_rebind_at",
	"served", "served_at", "served_ok", "served_detail", "served_endpoints",
}

// deploymentValues are d's record columns, in the order of deploymentColumns.
func deploymentValues(d Deployment) ([]any, error) {
	sc := d.ServedCheck
	if sc == nil {
		sc = &ServedCheck{}
	}
	var err error
	t := func(at time.Time, field string) string {
		s, e := encodeTime(at)
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", field, e)
		}
		return s
	}
	v := []any{
		d.Device, d.Issuer, d.CertRef, d.KeyRef, encodeList(d.ChainRefs), d.OrderRef, d.Serial, d.Fingerprint,
		t(d.NotBefore, "NotBefore"), t(d.NotAfter, "NotAfter"), d.SpecHash, encodeList(d.Bindings), t(d.DeployedAt, "DeployedAt"),
		t(d.RevocationCheckedAt, "RevocationCheckedAt"), d.Revoked,
		t(d.RenewalWindowStart, "RenewalWindowStart"), t(d.RenewalWindowEnd, "RenewalWindowEnd"), t(d.RenewalInfoAt, "RenewalInfoAt"),
		t(d.RenewalAt, "RenewalAt"), t(d.RenewalInfoRetryAt, "RenewalInfoRetryAt"), d.Adopted, int64(d.Rebinds), t(d.LastRebindAt, "LastRebindAt"),
		d.ServedCheck != nil, t(sc.At, "ServedCheck.At"), sc.OK, sc.Detail, encodeList(sc.Endpoints),
		t(d.CACheckDueAt, "CACheckDueAt"),
	}
	return v, err
}

// deploymentRecord is the scan target of one row's record columns.
type deploymentRecord struct {
	certificate, certPEM, chainPEM                                            string
	device, issuer, certRef, keyRef, chainRefs, orderRef, serial, fingerprint string
	notBefore, notAfter, specHash, bindings, deployedAt, revocationCheckedAt  string
	windowStart, windowEnd, infoAt, renewalAt, infoRetryAt, lastRebindAt      string
	servedAt, servedDetail, servedEndpoints, caCheckDueAt                     string
	revoked, adopted, served, servedOK                                        bool
	rebinds                                                                   int64
}

// targets returns the scan destinations of the columns selectDeployments reads: certificate,
// then the record columns (all of them when whole, else summaryColumns), then the PEM bodies
// when whole. A column a summary does not read keeps its zero value.
func (r *deploymentRecord) targets(whole bool) []any {
	byColumn := map[string]any{
		"device": &r.device, "issuer": &r.issuer, "cert_ref": &r.certRef, "key_ref": &r.keyRef, "chain_refs": &r.chainRefs,
		"order_ref": &r.orderRef, "serial": &r.serial, "fingerprint": &r.fingerprint, "not_before": &r.notBefore,
		"not_after_text": &r.notAfter, "spec_hash": &r.specHash, "bindings": &r.bindings, "deployed_at": &r.deployedAt,
		"revocation_checked_at": &r.revocationCheckedAt, "revoked": &r.revoked, "renewal_window_start": &r.windowStart,
		"renewal_window_end": &r.windowEnd, "renewal_info_at": &r.infoAt, "renewal_at": &r.renewalAt,
		"renewal_info_retry_at": &r.infoRetryAt, "adopted": &r.adopted, "rebinds": &r.rebinds, "last_rebind_at": &r.lastRebindAt,
		"served": &r.served, "served_at": &r.servedAt, "served_ok": &r.servedOK, "served_detail": &r.servedDetail,
		"served_endpoints": &r.servedEndpoints, "ca_check_due_at": &r.caCheckDueAt,
	}
	columns := summaryColumns
	if whole {
		columns = deploymentColumns
	}
	dest := []any{&r.certificate}
	for _, c := range columns {
		dest = append(dest, byColumn[c])
	}
	if whole {
		dest = append(dest, &r.certPEM, &r.chainPEM)
	}
	return dest
}

// deployment decodes the scanned row.
func (r *deploymentRecord) deployment(whole bool) (Deployment, error) {
	d := Deployment{Certificate: r.certificate, Device: r.device, Issuer: r.issuer, CertRef: r.certRef, KeyRef: r.keyRef,
		OrderRef: r.orderRef, Serial: r.serial, Fingerprint: r.fingerprint, SpecHash: r.specHash,
		Revoked: r.revoked, Adopted: r.adopted, Rebinds: int(r.rebinds)}
	var err error
	set := func(t *time.Time, s, column string) {
		if err == nil {
			if *t, err = decodeTime(s); err != nil {
				err = fmt.Errorf("%s: %w", column, err)
			}
		}
	}
	list := func(l *[]string, s, column string) {
		if err == nil {
			if *l, err = decodeList(s); err != nil {
				err = fmt.Errorf("%s: %w", column, err)
			}
		}
	}
	set(&d.NotBefore, r.notBefore, "not_before")
	set(&d.NotAfter, r.notAfter, "not_after_text")
	set(&d.DeployedAt, r.deployedAt, "deployed_at")
	set(&d.RevocationCheckedAt, r.revocationCheckedAt, "revocation_checked_at")
	set(&d.RenewalWindowStart, r.windowStart, "renewal_window_start")
	set(&d.RenewalWindowEnd, r.windowEnd, "renewal_window_end")
	set(&d.RenewalInfoAt, r.infoAt, "renewal_info_at")
	set(&d.RenewalAt, r.renewalAt, "renewal_at")
	set(&d.RenewalInfoRetryAt, r.infoRetryAt, "renewal_info_retry_at")
	set(&d.LastRebindAt, r.lastRebindAt, "last_rebind_at")
	set(&d.CACheckDueAt, r.caCheckDueAt, "ca_check_due_at")
	list(&d.ChainRefs, r.chainRefs, "chain_refs")
	list(&d.Bindings, r.bindings, "bindings")
	if r.served {
		sc := &ServedCheck{OK: r.servedOK, Detail: r.servedDetail}
		set(&sc.At, r.servedAt, "served_at")
		list(&sc.Endpoints, r.servedEndpoints, "served_endpoints")
		d.ServedCheck = sc
	}
	if err != nil {
		return Deployment{}, err
	}
	if !whole {
		d.Summary = true
		return d, nil
	}
	d.CertPEM = r.certPEM
	if err := json.Unmarshal([]byte(r.chainPEM), &d.ChainPEM); err != nil {
		return Deployment{}, fmt.Errorf("chain_pem: %w", err)
	}
	return d, nil
}

// encodeTime writes t as the JSON record did (RFC 3339, nanoseconds, t's offset), refusing what
// RFC 3339 cannot write (years after 9999); the zero time is the empty string.
func encodeTime(t time.Time) (string, error) {
	if t.IsZero() {
		return "", nil
	}
	b, err := t.MarshalText()
	return string(b), err
}

func decodeTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// encodeList writes a list of strings as text: the empty string for nil, otherwise "[" followed by each item
// and a newline, with backslashes and newlines inside items escaped (\\, \n). An empty list is
// "[", so nil and empty read back as they were written.
func encodeList(l []string) string {
	if l == nil {
		return ""
	}
	var b strings.Builder
	b.WriteByte('[')
	for _, s := range l {
		if strings.ContainsAny(s, "\\\n") {
			s = strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}

func decodeList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	body, ok := strings.CutPrefix(s, "[")
	if !ok || (body != "" && !strings.HasSuffix(body, "\n")) {
		return nil, fmt.Errorf("%q is not a stored list", s)
	}
	if body == "" {
		return []string{}, nil
	}
	items := strings.Split(body[:len(body)-1], "\n")
	if strings.Contains(body, `\`) {
		for i, it := range items {
			if items[i], ok = unescapeItem(it); !ok {
				return nil, fmt.Errorf("%q is not a stored list", s)
			}
		}
	}
	return items, nil
}

func unescapeItem(s string) (string, bool) {
	if !strings.Contains(s, `\`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", false
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			return "", false
		}
	}
	return b.String(), true
}
