package f5bigip

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"

	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// PCI mode, as the Sectigo agent's manual (seed 004) promises it: the key's passphrase comes
// from a random generator, lives in memory for one GenerateCSR call, and is never stored, so it
// cannot be used to export the key. What makes that possible is that BIG-IP keeps a profile's
// passphrase itself, encrypted (f5-ansible bigip_profile_client_ssl: "Passphrases are encrypted
// on the remote BIG-IP device"). So GenerateCSR, while it still has the passphrase, builds
// everything that needs it:
//
//  1. the key, password-protected (sys/crypto/key with securityType password), read back to see
//     that the device did protect it;
//  2. the CSR from the key;
//  3. a self-signed placeholder certificate <stem>.crt and chain <stem>_chain.crt for the key;
//  4. the key's own client-ssl profile <stem>_clientssl holding that pair with the passphrase.
//
// Then ImportCert installs the CA-issued certificate over the placeholder (same key, which the
// device allows; another key is refused with 01070317) and the chain over the placeholder
// chain; Bind attaches the key's profile to virtual servers in place of the profile they carry,
// which becomes its parent (defaultsFrom) so the customer's TLS settings stay; Rollback attaches
// the old profiles again. None of these needs the passphrase: switching a virtual server between
// profiles does not, only putting a protected key into a profile does (01070313 otherwise,
// f5-ansible#2131).

// keyProfileDescription marks the profiles GenerateCSR makes.
const keyProfileDescription = "certfleet PCI key profile: holds the key's passphrase; attached by Bind"

// placeholderCN is the common name of the placeholder certificates; Bind refuses to attach a
// profile that still holds one. ".invalid" is reserved (RFC 2606).
const placeholderCN = "placeholder.certfleet.invalid"

// placeholderDays is the lifetime of the placeholder certificates.
const placeholderDays = 30

// newPassphrase returns 32 random bytes, base64url-encoded (43 characters). It is a byte slice,
// never a Go string, so the caller can clear it: the request bodies that carry it are built
// around it (icontrol.WithSecret) and cleared too.
func newPassphrase() ([]byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	defer clear(b[:])
	out := make([]byte, base64.RawURLEncoding.EncodedLen(len(b)))
	base64.RawURLEncoding.Encode(out, b[:])
	return out, nil
}

// secretOpts are the request options that put pass into a body in place of
// icontrol.SecretPlaceholder.
func secretOpts(pass []byte) []icontrol.Option {
	return []icontrol.Option{icontrol.WithSecret(pass)}
}

// makeKeyProfile makes the placeholder certificate and chain for a new PCI key and the key's
// client-ssl profile, which from then on holds the passphrase. On failure it removes what it made.
func (d *device) makeKeyProfile(ctx context.Context, keyPath string, pass []byte) error {
	leaf := pciCertPath(keyPath)
	made := []string{}
	fail := func(err error) error {
		d.removeObjects(ctx, append([]string{icontrol.ObjectPath(icontrol.PathClientSSL, keyProfilePath(keyPath))}, made...))
		return err
	}
	for _, path := range []string{leaf, chainPath(leaf)} {
		if err := d.certFromKey(ctx, path, keyPath, pass); err != nil {
			return fail(err)
		}
		made = append(made, icontrol.ObjectPath(icontrol.PathFileCert, path))
	}
	profile := keyProfilePath(keyPath)
	part, short := splitPath(profile)
	body := map[string]any{
		"name": short, "partition": part, "defaultsFrom": d.parent, "description": keyProfileDescription,
		"certKeyChain": []icontrol.CertKeyChain{{Name: "default", Cert: leaf, Key: keyPath, Chain: chainPath(leaf), Passphrase: icontrol.SecretPlaceholder}},
	}
	if err := d.c.Send(ctx, http.MethodPost, icontrol.PathClientSSL, body, nil, secretOpts(pass)...); err != nil {
		// Without an answer the profile may exist: fail() removes it too.
		return fail(d.deviceError(ctx, "create client-ssl profile "+profile, err))
	}
	var got icontrol.ClientSSLProfile
	if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathClientSSL, profile), &got); err != nil {
		return fail(d.deviceError(ctx, "read back client-ssl profile "+profile, err))
	}
	if e := got.Entries(); len(e) != 1 || e[0].Key != keyPath || e[0].Cert != leaf {
		return fail(sdk.Internal(sdk.ReasonDeviceError, "client-ssl profile %s on %s does not hold key %s after it was made", profile, d.address, keyPath))
	}
	return nil
}

// certFromKey makes a self-signed placeholder certificate for a key on the device
// ("create sys crypto cert <name> key <key> common-name .. lifetime .."). The REST body is
// [UNCONFIRMED], and so is whether a protected key needs its passphrase here: it is sent only
// when the device says it could not read the key (as for the CSR).
func (d *device) certFromKey(ctx context.Context, path, keyPath string, pass []byte) error {
	part, short := splitPath(path)
	body := map[string]any{"name": short, "partition": part, "key": keyPath, "commonName": placeholderCN, "lifetime": placeholderDays}
	err := d.c.Send(ctx, http.MethodPost, icontrol.PathCryptoCert, body, nil)
	if err != nil && pass != nil && icontrol.IsBadPassphrase(err) {
		sdk.Logger(ctx).Debug("device needs the key's passphrase to make a certificate from it; retrying with it", "cert", path)
		body["passphrase"] = icontrol.SecretPlaceholder
		err = d.c.Send(ctx, http.MethodPost, icontrol.PathCryptoCert, body, nil, secretOpts(pass)...)
	}
	if err != nil {
		return d.deviceError(ctx, "make placeholder certificate "+path, err)
	}
	return nil
}

// removeObjects deletes objects (by their iControl paths) a failed call made; absent ones are fine.
func (d *device) removeObjects(ctx context.Context, paths []string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
	defer cancel()
	for _, p := range paths {
		if err := d.c.Send(cctx, http.MethodDelete, p, nil, nil); err != nil && !icontrol.IsNotFound(err) {
			sdk.Logger(ctx).Warn("could not remove an object of a failed call", "path", p, "error", err.Error())
		}
	}
}

// keyProfile reads a key's own profile; ok is false when the key has none (a key made without
// PCI mode, or by another tool).
func (d *device) keyProfile(ctx context.Context, keyPath string) (icontrol.ClientSSLProfile, bool, error) {
	var p icontrol.ClientSSLProfile
	err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathClientSSL, keyProfilePath(keyPath)), &p)
	switch {
	case icontrol.IsNotFound(err):
		return p, false, nil
	case err != nil:
		return p, false, d.deviceError(ctx, "read client-ssl profile "+keyProfilePath(keyPath), err)
	}
	for _, e := range p.Entries() {
		if e.Key == keyPath {
			return p, true, nil
		}
	}
	return p, false, nil
}

// isCertfleetProfile tells the profiles certfleet made (a PCI key's profile, or the certfleet_<vs>
// profile of a virtual server), whose parent is the customer's profile they replaced.
func isCertfleetProfile(p icontrol.ClientSSLProfile) bool {
	_, short := splitPath(p.Path())
	return p.Description == keyProfileDescription || len(short) > len("certfleet_") && short[:len("certfleet_")] == "certfleet_"
}

// carriers maps each profile path to the virtual servers that carry it.
func (d *device) carriers(ctx context.Context) (map[string][]string, error) {
	virtuals, err := icontrol.List[icontrol.Virtual](ctx, d.c, icontrol.PathVirtual, url.Values{"expandSubcollections": {"true"}})
	if err != nil {
		return nil, d.deviceError(ctx, "list virtual servers", err)
	}
	out := map[string][]string{}
	for _, v := range virtuals {
		items := v.ProfilesReference.Items
		if items == nil {
			if items, err = d.c.VirtualProfiles(ctx, v.FullPath); err != nil {
				return nil, d.deviceError(ctx, "read profiles of virtual server "+v.FullPath, err)
			}
		}
		for _, vp := range items {
			out[vp.Path()] = append(out[vp.Path()], v.FullPath)
		}
	}
	return out, nil
}

// requireActive refuses changes on a unit that is not the active one of its HA pair: a config
// made on a standby would be synced over the group's (certbot-bigip _get_active_bigip works on
// the unit whose failoverState is active). Option standalone turns the check off.
func (d *device) requireActive(ctx context.Context) error {
	if d.standalone {
		return nil
	}
	devices, err := icontrol.List[icontrol.Device](ctx, d.c, icontrol.PathDevice, nil)
	if err != nil {
		return d.deviceError(ctx, "read cm device", err)
	}
	for _, dev := range devices {
		if dev.SelfDevice == "true" && dev.FailoverState != "active" {
			return sdk.FailedPrecondition(ReasonNotActive,
				"%s (%s) is the %s unit of its HA pair; certfleet changes only the active unit, which then syncs the group: point device %q at the active unit's address (or set option standalone: true for a unit outside any device group)",
				d.address, dev.Hostname, dev.FailoverState, d.t.Name)
		}
	}
	return nil
}
