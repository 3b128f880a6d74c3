// Package inventory lists every certificate on every device, managed by certfleet or not, and
// says which configured certificate (if any) each one is; it also renders snippets that bring an
// unmanaged certificate under management.
package inventory

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Device is one device to read.
type Device struct {
	Name   string
	Plugin sdk.Plugin
	Target sdk.Target
}

// Row is one certificate object on one device.
type Row struct {
	Device    string    `json:"device"`
	Object    string    `json:"object"`
	Subject   string    `json:"subject"`
	SANs      []string  `json:"sans"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	KeyType   string    `json:"key_type"`
	Bindings  []string  `json:"bindings"`
	IsCA      bool      `json:"is_ca,omitempty"`
	Managed   bool      `json:"managed"`
	// Certificate is the configured certificate this object is (or is the chain of).
	Certificate string `json:"certificate,omitempty"`
	// Role: deployed, adopted, chain, in-progress; empty when unmanaged.
	Role string `json:"role,omitempty"`

	bindings []sdk.Binding
	key      sdk.KeySpec
	dnsNames []string
	ips      []string
	cn       string
}

// DeviceError is a device that could not be read.
type DeviceError struct {
	Device string `json:"device"`
	Error  string `json:"error"`
}

// Fleet is the inventory of every device read.
type Fleet struct {
	Rows   []Row         `json:"certificates"`
	Errors []DeviceError `json:"errors,omitempty"`
	At     time.Time     `json:"at"`
}

// Options for Collect.
type Options struct {
	Deployments map[string]state.Deployment
	Operations  map[string]*state.Operation
	// Workers bounds the devices read at once (4 when zero); CallTimeout bounds each call.
	Workers     int
	CallTimeout time.Duration
	Redact      func(string) string
	Now         time.Time
}

// Collect asks each device for its certificates (one Inventory call per device; nothing changes)
// and marks each object with what the state database says certfleet put there.
func Collect(ctx context.Context, devices []Device, o Options) Fleet {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Minute
	}
	if o.Redact == nil {
		o.Redact = func(s string) string { return s }
	}
	type owner struct{ cert, role string }
	owners := map[string]owner{} // device|ref
	for _, d := range o.Deployments {
		role := "deployed"
		if d.Adopted {
			role = "adopted"
		}
		owners[d.Device+"|"+d.CertRef] = owner{d.Certificate, role}
		for _, ref := range d.ChainRefs {
			if _, ok := owners[d.Device+"|"+ref]; !ok {
				owners[d.Device+"|"+ref] = owner{d.Certificate, "chain"}
			}
		}
	}
	for _, op := range o.Operations {
		if op.CertRef != "" {
			owners[op.Device+"|"+op.CertRef] = owner{op.Certificate, "in-progress"}
		}
	}
	fleet := Fleet{At: o.Now}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.Workers)
	for _, dev := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
			list, err := dev.Plugin.Inventory(cctx, dev.Target)
			cancel()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fleet.Errors = append(fleet.Errors, DeviceError{Device: dev.Name, Error: o.Redact(fmt.Sprintf("inventory of %s: %v", dev.Name, err))})
				return
			}
			for _, dc := range list {
				r := rowOf(dev.Name, dc)
				if ow, ok := owners[dev.Name+"|"+dc.CertRef]; ok {
					r.Managed, r.Certificate, r.Role = true, ow.cert, ow.role
				}
				fleet.Rows = append(fleet.Rows, r)
			}
		}()
	}
	wg.Wait()
	sort.Slice(fleet.Rows, func(i, j int) bool {
		a, b := fleet.Rows[i], fleet.Rows[j]
		if a.Device != b.Device {
			return a.Device < b.Device
		}
		return a.Object < b.Object
	})
	sort.Slice(fleet.Errors, func(i, j int) bool { return fleet.Errors[i].Device < fleet.Errors[j].Device })
	return fleet
}

func rowOf(device string, dc sdk.DeviceCertificate) Row {
	r := Row{Device: device, Object: dc.CertRef, Subject: dc.Subject, Issuer: dc.Issuer, NotBefore: dc.NotBefore, NotAfter: dc.NotAfter,
		KeyType: dc.KeySpec.String(), IsCA: dc.IsCA, bindings: dc.Bindings, key: dc.KeySpec, dnsNames: dc.SANs.DNSNames, ips: dc.SANs.IPAddresses}
	if dc.KeySpec.Type == sdk.KeyTypeUnspecified {
		r.KeyType = ""
	}
	r.SANs = append(append(append(r.SANs, dc.SANs.DNSNames...), dc.SANs.IPAddresses...), dc.SANs.EmailAddresses...)
	for _, b := range dc.Bindings {
		s := b.Kind + "/" + b.Name
		if b.SNI {
			s += " (sni)"
		}
		r.Bindings = append(r.Bindings, s)
	}
	if dc.CertPEM != "" {
		if leaf, err := sdk.ParseCertificatePEM(dc.CertPEM); err == nil {
			r.cn = leaf.Subject.CommonName
		}
	}
	if r.cn == "" {
		for _, part := range strings.Split(dc.Subject, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "CN="); ok {
				r.cn = v
			}
		}
	}
	return r
}

// Filter selects rows.
type Filter struct {
	Unmanaged bool
	// Expiring keeps certificates that expire within this long (0: all).
	Expiring time.Duration
}

// Apply returns the rows the filter keeps.
func (f Filter) Apply(rows []Row, now time.Time) []Row {
	var out []Row
	for _, r := range rows {
		if f.Unmanaged && r.Managed {
			continue
		}
		if f.Expiring > 0 && r.NotAfter.After(now.Add(f.Expiring)) {
			continue
		}
		out = append(out, r)
	}
	return out
}
