package haproxyruntime

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// The commands, and how their answers are read. Each answer's wording is HAProxy's, from
// src/ssl_ckch.c and src/ssl_crtlist.c (3.1+), and the management guide, section 9.3.

// busy recognises HAProxy's answers for "someone else is changing certificates now": the
// certificate lock ("Operations on certificates are currently locked!") and another client's
// open transaction ("The ongoing transaction is about '...'"). Both are worth retrying.
func busy(t sdk.Target, command, answer string) *sdk.Error {
	if strings.Contains(answer, "currently locked") || strings.Contains(answer, "The ongoing transaction is about") {
		return sdk.Unavailable("device %s is changing another certificate (%q)", t.Name, verb(command)).WithVendor("runtime-api", firstLine(answer))
	}
	return nil
}

// showInfo reads "show info": one "Name: value" per line.
func (c *client) showInfo(ctx context.Context) (map[string]string, error) {
	answer, err := c.run(ctx, "show info", "")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(answer, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if out["Version"] == "" {
		return nil, sdk.Internal(sdk.ReasonDeviceError, "device %s: \"show info\" has no Version: is %s a HAProxy stats socket?", c.t.Name, c.t.Address).WithVendor("runtime-api", firstLine(answer))
	}
	return out, nil
}

// listed reads a listing: one name per line, "# ..." comments; a name starting with '*' is an
// uncommitted transaction ("show ssl cert").
func listed(answer string) []string {
	var out []string
	for _, line := range strings.Split(answer, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "*") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// stores lists the committed certificate stores ("show ssl cert").
func (c *client) stores(ctx context.Context) ([]string, error) {
	answer, err := c.run(ctx, "show ssl cert", "")
	if err != nil {
		return nil, err
	}
	if e := busy(c.t, "show ssl cert", answer); e != nil {
		return nil, e
	}
	return listed(answer), nil
}

// crtLists lists the crt-lists and directories ("show ssl crt-list").
func (c *client) crtLists(ctx context.Context) ([]string, error) {
	answer, err := c.run(ctx, "show ssl crt-list", "")
	if err != nil {
		return nil, err
	}
	if e := busy(c.t, "show ssl crt-list", answer); e != nil {
		return nil, e
	}
	return listed(answer), nil
}

// crtListEntry is one line of a crt-list as "show ssl crt-list <list>" prints it: the store,
// then its SSL options and SNI filters; the whole line can be added back as it is.
type crtListEntry struct {
	store, line string
}

func (c *client) entries(ctx context.Context, list string) ([]crtListEntry, error) {
	cmd := "show ssl crt-list " + list
	answer, err := c.run(ctx, cmd, "")
	if err != nil {
		return nil, err
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return nil, e
	}
	if strings.HasPrefix(answer, "didn't find") {
		return nil, sdk.UnknownBinding("HAProxy has no crt-list %q", list)
	}
	var out []crtListEntry
	for _, line := range strings.Split(answer, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, crtListEntry{store: strings.Fields(line)[0], line: line})
	}
	return out, nil
}

// storeDetails is "show ssl cert <name>" read into the contract's terms.
type storeDetails struct {
	sdk.DeviceCertificate
	status string
	parked bool
}

// haproxyTime is how "show ssl cert" prints notBefore/notAfter (OpenSSL's ASN1_TIME_print).
const haproxyTime = "Jan _2 15:04:05 2006 MST"

// describe reads one store; nil when HAProxy has no such store.
func (c *client) describe(ctx context.Context, name string) (*storeDetails, error) {
	cmd := "show ssl cert " + escapeName(name)
	answer, err := c.run(ctx, cmd, "")
	if err != nil {
		return nil, err
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return nil, e
	}
	if strings.HasPrefix(answer, "Can't display the certificate") {
		return nil, nil
	}
	d := &storeDetails{}
	for _, line := range strings.Split(answer, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Status":
			d.status = v
		case "Serial":
			n, ok := new(big.Int).SetString(v, 16)
			if !ok {
				return nil, sdk.Internal(sdk.ReasonDeviceError, "store %s: unreadable serial %q", name, v)
			}
			d.Serial = hex.EncodeToString(n.Bytes())
		case "notBefore", "notAfter":
			at, err := time.Parse(haproxyTime, v)
			if err != nil {
				return nil, sdk.Internal(sdk.ReasonDeviceError, "store %s: unreadable %s %q", name, k, v).WithCause(err)
			}
			if k == "notBefore" {
				d.NotBefore = at
			} else {
				d.NotAfter = at
			}
		case "Subject":
			d.Subject = v
			d.parked = strings.Contains(v, "CN="+parkedCN)
		case "Issuer":
			d.Issuer = v
		case "Subject Alternative Name":
			// Only DNS names are printed (ssl_sock_get_san_oneline), as "DNS:a, DNS:b".
			for _, san := range strings.Split(v, ",") {
				if dns, ok := strings.CutPrefix(strings.TrimSpace(san), "DNS:"); ok {
					d.SANs.DNSNames = append(d.SANs.DNSNames, dns)
				}
			}
		case "Algorithm":
			d.KeySpec = keySpecOfAlgorithm(v)
		}
	}
	if d.status == "Empty" {
		return &storeDetails{status: d.status, parked: true}, nil
	}
	return d, nil
}

// keySpecOfAlgorithm reads cert_get_pkey_algo's "RSA2048" / "EC256".
func keySpecOfAlgorithm(v string) sdk.KeySpec {
	var bits int
	switch {
	case strings.HasPrefix(v, "RSA"):
		fmt.Sscanf(v, "RSA%d", &bits)
		return sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: bits}
	case strings.HasPrefix(v, "EC"):
		fmt.Sscanf(v, "EC%d", &bits)
		return sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: bits}
	}
	return sdk.KeySpec{}
}

// escapeName escapes a leading '*', which "show ssl cert" reads as "the transaction of".
func escapeName(name string) string {
	if strings.HasPrefix(name, "*") {
		return `\` + name
	}
	return name
}

// newStore creates an empty store ("new ssl cert").
func (c *client) newStore(ctx context.Context, name string) error {
	cmd := "new ssl cert " + name
	answer, err := c.run(ctx, cmd, "")
	if err != nil {
		return err
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return e
	}
	if strings.Contains(answer, "already exists") {
		return sdk.AlreadyExists("HAProxy already has a certificate store %s", name).WithVendor("runtime-api", firstLine(answer))
	}
	if !strings.HasPrefix(answer, "New empty certificate store") {
		return refused(c.t, cmd, answer)
	}
	return nil
}

// replace loads payload (PEM: certificate, chain, key) into store through a transaction and
// commits it. A transaction that fails is aborted: HAProxy keeps it open otherwise, and holds one
// at a time, so it would block every later change.
func (c *client) replace(ctx context.Context, store, payload string) error {
	cmd := "set ssl cert " + store
	answer, err := c.run(ctx, cmd, payload)
	if err != nil {
		c.abortIfOurs(ctx, store)
		return err
	}
	if stale := staleTransaction(answer, store); stale != "" {
		// A transaction on another of this plugin's stores, while this call holds the device's
		// lock, was left by a plugin process that died between set and commit (one certfleet
		// instance works a device at a time). Left open it would block every change: end it.
		sdk.Logger(ctx).Warn("aborting a transaction a stopped certfleet left open", "store", stale)
		c.abortIfOurs(ctx, stale)
		if answer, err = c.run(ctx, cmd, payload); err != nil {
			c.abortIfOurs(ctx, store)
			return err
		}
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return e
	}
	if !strings.HasPrefix(answer, "Transaction created") && !strings.HasPrefix(answer, "Transaction updated") {
		return refused(c.t, cmd, answer)
	}
	cmd = "commit ssl cert " + store
	answer, err = c.run(ctx, cmd, "")
	if err != nil {
		c.abortIfOurs(ctx, store)
		return err
	}
	if strings.Contains(answer, "\nSuccess!") || strings.HasPrefix(answer, "Success!") {
		return nil
	}
	c.abortIfOurs(ctx, store)
	if strings.Contains(answer, "inconsistencies between private key and certificate") {
		return sdk.InvalidArgument(sdk.ReasonKeyMismatch, "HAProxy: the certificate is not for the key in %s", store).WithVendor("runtime-api", firstLine(answer))
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return e
	}
	return refused(c.t, cmd, answer)
}

// abortIfOurs aborts the open transaction on store, if there is one, even when ctx has ended.
func (c *client) abortIfOurs(ctx context.Context, store string) {
	cmd := "abort ssl cert " + store
	answer, err := c.run(context.WithoutCancel(ctx), cmd, "")
	if err == nil && strings.HasPrefix(answer, "Transaction aborted") {
		sdk.Logger(ctx).Info("aborted the unfinished transaction", "store", store)
	}
}

// parkedKey reads the key back from a store ("dump ssl cert": key, then leaf, then chain).
func (c *client) parkedKey(ctx context.Context, store string) (crypto.Signer, error) {
	cmd := "dump ssl cert " + store
	answer, err := c.run(ctx, cmd, "")
	if err != nil {
		return nil, err
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return nil, e
	}
	rest := []byte(answer)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			// The parse error says nothing of the key's content.
			return nil, sdk.Internal(sdk.ReasonDeviceError, "store %s: unreadable %s", store, block.Type).WithCause(err)
		}
		if signer, ok := key.(crypto.Signer); ok {
			return signer, nil
		}
	}
	// Never echo the answer: it may hold key material.
	return nil, sdk.Internal(sdk.ReasonDeviceError, "HAProxy printed no private key for store %s (%q)", store, firstLine(answer))
}

// addEntry adds store to a crt-list as a line of its own, served for its certificate's names.
func (c *client) addEntry(ctx context.Context, list, store string) error {
	return c.crtListAdd(ctx, "add ssl crt-list "+list+" "+store, "")
}

// addEntryLine adds a whole crt-list line (SSL options and SNI filters kept) as a payload.
func (c *client) addEntryLine(ctx context.Context, list, line string) error {
	return c.crtListAdd(ctx, "add ssl crt-list "+list, line)
}

func (c *client) crtListAdd(ctx context.Context, cmd, payload string) error {
	answer, err := c.run(ctx, cmd, payload)
	if err != nil {
		return err
	}
	if strings.Contains(answer, "Success!") && !strings.Contains(answer, "Failed!") {
		return nil
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return e
	}
	if strings.Contains(answer, "does not exist") {
		return sdk.NotFound("HAProxy: %s", firstLine(answer)).WithVendor("runtime-api", firstLine(answer))
	}
	return refused(c.t, cmd, answer)
}

// deleteEntry removes store's line from a crt-list.
func (c *client) deleteEntry(ctx context.Context, list, store string) error {
	cmd := "del ssl crt-list " + list + " " + store
	answer, err := c.run(ctx, cmd, "")
	if err != nil {
		return err
	}
	if strings.HasPrefix(answer, "Entry '") && strings.Contains(answer, "deleted") {
		return nil
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return e
	}
	if strings.Contains(answer, "used as default certificate") {
		return sdk.FailedPrecondition(sdk.ReasonStillBound, "HAProxy will not remove %s from %s: it is a frontend's default certificate", store, list).WithVendor("runtime-api", answer)
	}
	return refused(c.t, cmd, answer)
}

// deleteStore removes a store; in use, or already gone, is a reason, not an error.
func (c *client) deleteStore(ctx context.Context, store string) (bool, string, error) {
	cmd := "del ssl cert " + store
	answer, err := c.run(ctx, cmd, "")
	if err != nil {
		return false, "", err
	}
	switch {
	case strings.HasPrefix(answer, "Certificate '") && strings.Contains(answer, "deleted"):
		return true, "", nil
	case strings.Contains(answer, "doesn't exist"):
		return false, store + " not found", nil
	case strings.Contains(answer, "in use"):
		return false, store + " is in use: " + firstLine(strings.TrimPrefix(answer, "Can't remove the certificate: ")), nil
	case strings.Contains(answer, "ongoing transaction"):
		return false, store + " has a transaction open", nil
	}
	if e := busy(c.t, cmd, answer); e != nil {
		return false, "", e
	}
	return false, "", refused(c.t, cmd, answer)
}

// staleTransaction names the store of an open transaction HAProxy reports ("The ongoing
// transaction is about '<path>' but ...") when that store is another of this plugin's own.
func staleTransaction(answer, ours string) string {
	const prefix = "The ongoing transaction is about '"
	rest, ok := strings.CutPrefix(answer, prefix)
	if !ok {
		return ""
	}
	path, _, ok := strings.Cut(rest, "'")
	if !ok || path == ours || !strings.HasPrefix(path, storePrefix) {
		return ""
	}
	return path
}
