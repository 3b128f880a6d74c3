package bigipsim

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// read answers a GET.
func (s *Sim) read(coll, item, sub string, q url.Values) (any, *apiErr) {
	st := s.running
	switch coll {
	case "sys/file/ssl-cert":
		if item != "" {
			c, ok := st.certs[item]
			if !ok {
				return nil, notFound("Certificate File Object", item)
			}
			return certFileJSON(c), nil
		}
		return collection("sys/file/ssl-cert", "tm:sys:file:ssl-cert:ssl-certcollectionstate", sortedValues(st.certs, certFileJSON), q)
	case "sys/file/ssl-key":
		if item != "" {
			k, ok := st.keys[item]
			if !ok {
				return nil, notFound("Certificate Key File Object", item)
			}
			return keyFileJSON(k), nil
		}
		return collection("sys/file/ssl-key", "tm:sys:file:ssl-key:ssl-keycollectionstate", sortedValues(st.keys, keyFileJSON), q)
	case "sys/file/ssl-csr":
		if item != "" {
			c, ok := st.csrs[item]
			if !ok {
				return nil, notFound("Certificate Signing Request File Object", item)
			}
			return csrFileJSON(c), nil
		}
		return collection("sys/file/ssl-csr", "tm:sys:file:ssl-csr:ssl-csrcollectionstate", sortedValues(st.csrs, csrFileJSON), q)
	case "ltm/profile/client-ssl":
		if item != "" {
			p, ok := st.clientSSL[item]
			if !ok {
				return nil, notFound("client-ssl profile", item)
			}
			return profileJSON(st, p), nil
		}
		return collection("ltm/profile/client-ssl", "tm:ltm:profile:client-ssl:client-sslcollectionstate", sortedValues(st.clientSSL, func(p profileObj) map[string]any { return profileJSON(st, p) }), q)
	case "ltm/virtual":
		expand := q.Get("expandSubcollections") == "true"
		if item != "" {
			v, ok := st.virtuals[item]
			if !ok {
				return nil, notFound("Virtual Server", item)
			}
			if sub == "profiles" {
				items := make([]map[string]any, 0, len(v.profiles))
				for _, ap := range v.profiles {
					items = append(items, virtualProfileJSON(ap))
				}
				return map[string]any{"kind": "tm:ltm:virtual:profiles:profilescollectionstate", "items": items}, nil
			}
			if sub != "" {
				return nil, errf(http.StatusNotFound, "bigipsim does not simulate /mgmt/tm/ltm/virtual/.../%s", sub)
			}
			return virtualJSON(st, v, expand), nil
		}
		return collection("ltm/virtual", "tm:ltm:virtual:virtualcollectionstate",
			sortedValues(st.virtuals, func(v virtualObj) map[string]any { return virtualJSON(st, v, expand) }), q)
	case "sys/folder":
		if item != "" {
			// Folders are addressed as ~Tenant1, which route() reads as /Tenant1/ + nothing.
			name := strings.Trim(item, "/")
			name = strings.TrimPrefix(name, "Common/")
			if !st.folders[name] {
				return nil, notFound("folder", "/"+name)
			}
			return folderJSON(name), nil
		}
		names := make([]string, 0, len(st.folders))
		for f := range st.folders {
			names = append(names, f)
		}
		sort.Strings(names)
		items := make([]map[string]any, 0, len(names))
		for _, n := range names {
			items = append(items, folderJSON(n))
		}
		return map[string]any{"kind": "tm:sys:folder:foldercollectionstate", "items": items}, nil
	case "cm/device":
		return map[string]any{"kind": "tm:cm:device:devicecollectionstate", "items": s.devicesJSON()}, nil
	case "cm/sync-status":
		return s.syncStatusJSON(), nil
	case "transaction":
		id, err := strconv.ParseInt(item, 10, 64)
		t := s.txns[id]
		if err != nil || t == nil {
			return nil, errf(http.StatusNotFound, "Transaction with ID %s not found.", item)
		}
		if sub == "commands" {
			items := make([]map[string]any, 0, len(t.ops))
			for i := range t.ops {
				items = append(items, commandJSON(t, i))
			}
			return map[string]any{"kind": "tm:transaction:commandscollectionstate", "items": items}, nil
		}
		return transactionJSON(t), nil
	}
	return nil, errf(http.StatusMethodNotAllowed, "bigipsim does not simulate GET on /mgmt/tm/%s", coll)
}

func sortedValues[T any](m map[string]T, render func(T) map[string]any) []map[string]any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, render(m[k]))
	}
	return out
}

// collection applies $filter=partition eq X, $skip and $top, with nextLink paging.
func collection(path, kind string, items []map[string]any, q url.Values) (any, *apiErr) {
	if f := q.Get("$filter"); f != "" {
		parts := strings.Fields(f)
		if len(parts) != 3 || parts[0] != "partition" || parts[1] != "eq" {
			return nil, errf(http.StatusBadRequest, "bigipsim supports only $filter=partition eq <name>, not %q", f)
		}
		var kept []map[string]any
		for _, it := range items {
			if it["partition"] == parts[2] {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	total := len(items)
	skip := atoiDefault(q.Get("$skip"), 0)
	top := atoiDefault(q.Get("$top"), 0)
	out := map[string]any{"kind": kind, "selfLink": "https://localhost/mgmt/tm/" + path + "?ver=15.1.8"}
	if top <= 0 {
		out["items"] = nonNil(items)
		return out, nil
	}
	skip = min(max(skip, 0), total)
	end := min(skip+top, total)
	out["items"] = nonNil(items[skip:end])
	out["currentItemCount"] = end - skip
	out["itemsPerPage"] = top
	out["pageIndex"] = skip/top + 1
	out["startIndex"] = skip + 1
	out["totalItems"] = total
	out["totalPages"] = (total + top - 1) / top
	if end < total {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("$skip", strconv.Itoa(end))
		out["nextLink"] = "https://localhost/mgmt/tm/" + path + "?" + strings.ReplaceAll(next.Encode(), "%24", "$")
	}
	return out, nil
}

func nonNil(items []map[string]any) []map[string]any {
	if items == nil {
		return []map[string]any{}
	}
	return items
}

func selfLink(coll, path string) string {
	return "https://localhost/mgmt/tm/" + coll + "/" + strings.ReplaceAll(path, "/", "~") + "?ver=15.1.8"
}

// encryptedPassphrase stands in for the "$M$.." form the device returns: not the plain text.
func encryptedPassphrase(p string) string {
	sum := sha256.Sum256([]byte("bigipsim master key\x00" + p))
	return "$M$Sq$" + base64.StdEncoding.EncodeToString(sum[:])
}

func certFileJSON(c certObj) map[string]any {
	part, short := splitPath(c.path)
	leaf := c.certs[0]
	kt, size, curve := publicKeyInfo(leaf.PublicKey)
	var raw []byte
	for _, x := range c.certs {
		raw = append(raw, x.Raw...)
	}
	sum := sha1.Sum(raw)
	bundle := len(c.certs) > 1
	out := map[string]any{
		"kind": "tm:sys:file:ssl-cert:ssl-certstate", "name": short, "partition": part, "fullPath": c.path,
		"generation": 1, "selfLink": selfLink("sys/file/ssl-cert", c.path),
		"certificateKeyCurveName": curve, "certificateKeySize": size,
		"checksum":   fmt.Sprintf("SHA1:%d:%s", len(raw), hex.EncodeToString(sum[:])),
		"createTime": c.created.UTC().Format(time.RFC3339), "createdBy": "admin",
		"expirationDate": leaf.NotAfter.Unix(), "expirationString": leaf.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT"),
		"fingerprint": formatFingerprint(leaf), "isBundle": strconv.FormatBool(bundle),
		"issuer": formatDN(leaf.RawIssuer), "keyType": kt, "lastUpdateTime": c.updated.UTC().Format(time.RFC3339),
		"mode": 33188, "revision": 1, "size": len(raw), "subject": formatDN(leaf.RawSubject),
		"systemPath": fmt.Sprintf("/config/filestore/files_d/%s_d/certificate_d/:%s:%s_1", part, part, short),
		"updatedBy":  "admin", "version": 3,
	}
	if !bundle {
		out["serialNumber"] = formatSerial(leaf.SerialNumber)
	}
	if san := formatSANs(leaf); san != "" {
		out["subjectAlternativeName"] = san
	}
	return out
}

func keyFileJSON(k keyObj) map[string]any {
	part, short := splitPath(k.path)
	out := map[string]any{
		"kind": "tm:sys:file:ssl-key:ssl-keystate", "name": short, "partition": part, "fullPath": k.path,
		"generation": 1, "selfLink": selfLink("sys/file/ssl-key", k.path),
		"createTime": k.created.UTC().Format(time.RFC3339), "createdBy": "admin", "curveName": k.curve,
		"keySize": k.keySize, "keyType": k.keyType, "mode": 33184, "revision": 1, "securityType": k.securityType(),
		"systemPath": fmt.Sprintf("/config/filestore/files_d/%s_d/certificate_key_d/:%s:%s_1", part, part, short),
	}
	if k.passphrase != "" {
		out["passphrase"] = encryptedPassphrase(k.passphrase)
	}
	return out
}

func cryptoKeyJSON(k keyObj) map[string]any {
	out := keyFileJSON(k)
	out["kind"] = "tm:sys:crypto:key:keystate"
	out["name"] = k.path
	return out
}

func csrFileJSON(c csrObj) map[string]any {
	part, short := splitPath(c.path)
	return map[string]any{
		"kind": "tm:sys:file:ssl-csr:ssl-csrstate", "name": short, "partition": part, "fullPath": c.path,
		"generation": 1, "selfLink": selfLink("sys/file/ssl-csr", c.path), "key": c.key,
		"createTime": c.created.UTC().Format(time.RFC3339), "systemPath": c.systemPath,
	}
}

// profileJSON lists a profile as the device does: every setting with its effective value, own or
// inherited (the 11.6.2 listing in colin-stubbs/dehydrated-bigip#9 shows ciphers, tmOptions,
// peerCertMode, ... on a profile that inherits them from /Common/clientssl).
func profileJSON(st *state, p profileObj) map[string]any {
	part, short := splitPath(p.path)
	chain := make([]map[string]any, 0, len(p.entries))
	for _, e := range p.entries {
		m := map[string]any{"name": e.name, "appService": "none", "cert": e.cert, "key": e.key}
		if e.chain != "" {
			m["chain"] = e.chain
		}
		chain = append(chain, m)
	}
	server := p.serverName
	if server == "" {
		server = "none"
	}
	out := map[string]any{
		"kind": "tm:ltm:profile:client-ssl:client-sslstate", "name": short, "partition": part, "fullPath": p.path,
		"generation": 1, "selfLink": selfLink("ltm/profile/client-ssl", p.path), "certKeyChain": chain,
		"serverName": server, "sniDefault": strconv.FormatBool(p.sniDefault), "inheritCertkeychain": "false",
	}
	if p.defaultsFrom != "" {
		out["defaultsFrom"] = p.defaultsFrom
	}
	for k, v := range st.effectiveSettings(p) {
		out[k] = v
	}
	if p.description != "" {
		out["description"] = p.description
	}
	if len(p.entries) > 0 {
		out["cert"], out["key"] = p.entries[0].cert, p.entries[0].key
		if p.entries[0].chain != "" {
			out["chain"] = p.entries[0].chain
		}
	}
	return out
}

func virtualProfileJSON(ap attachedProfile) map[string]any {
	part, short := splitPath(ap.path)
	return map[string]any{"kind": "tm:ltm:virtual:profiles:profilesstate", "name": short, "partition": part,
		"fullPath": ap.path, "context": ap.context}
}

func virtualJSON(st *state, v virtualObj, expand bool) map[string]any {
	part, short := splitPath(v.path)
	ref := map[string]any{"link": "https://localhost/mgmt/tm/ltm/virtual/" + strings.ReplaceAll(v.path, "/", "~") + "/profiles?ver=15.1.8", "isSubcollection": true}
	if expand {
		items := make([]map[string]any, 0, len(v.profiles))
		for _, ap := range v.profiles {
			items = append(items, virtualProfileJSON(ap))
		}
		ref["items"] = items
	}
	return map[string]any{
		"kind": "tm:ltm:virtual:virtualstate", "name": short, "partition": part, "fullPath": v.path,
		"generation": 1, "selfLink": selfLink("ltm/virtual", v.path),
		"destination": fmt.Sprintf("/%s/127.0.0.1:%d", part, v.port), "ipProtocol": "tcp", "source": "0.0.0.0/0",
		"profilesReference": ref,
	}
}

func folderJSON(name string) map[string]any {
	return map[string]any{"kind": "tm:sys:folder:folderstate", "name": name, "fullPath": "/" + name,
		"selfLink": "https://localhost/mgmt/tm/sys/folder/~" + name + "?ver=15.1.8"}
}

func (s *Sim) devicesJSON() []map[string]any {
	self := map[string]any{
		"kind": "tm:cm:device:devicestate", "name": s.cfg.Hostname, "partition": "Common", "fullPath": "/Common/" + s.cfg.Hostname,
		"hostname": s.cfg.Hostname, "marketingName": "BIG-IP Virtual Edition", "product": "BIG-IP", "version": s.cfg.Version,
		"build": "0.0.6", "edition": "Final", "chassisId": "420f5a1e-bigip-sim-0001", "platformId": "Z100",
		"failoverState": s.cfg.FailoverState, "selfDevice": "true", "managementIp": "127.0.0.1", "timeZone": "UTC",
	}
	out := []map[string]any{self}
	peerState := "standby"
	if s.cfg.FailoverState != "active" {
		peerState = "active"
	}
	if len(s.cfg.DeviceGroups) > 0 {
		out = append(out, map[string]any{
			"kind": "tm:cm:device:devicestate", "name": "bigip2.sim.local", "partition": "Common", "fullPath": "/Common/bigip2.sim.local",
			"hostname": "bigip2.sim.local", "marketingName": "BIG-IP Virtual Edition", "product": "BIG-IP", "version": s.cfg.Version,
			"build": "0.0.6", "chassisId": "420f5a1e-bigip-sim-0002", "failoverState": peerState, "selfDevice": "false",
			"managementIp": "192.0.2.2",
		})
	}
	return out
}

func (s *Sim) syncStatusJSON() map[string]any {
	status, color, summary := "Standalone", "green", "There is no device group to sync."
	if len(s.cfg.DeviceGroups) > 0 {
		status, color, summary = "In Sync", "green", "All devices in the device group are in sync"
		for _, g := range s.cfg.DeviceGroups {
			if s.syncDisconnected {
				// f5-ansible's bigip_configsync_action treats "Disconnected" as a failure.
				status, color, summary = "Disconnected", "red", "The local device is disconnected from the device group."
				break
			}
			if s.synced[g] != s.running.generation {
				status, color, summary = "Changes Pending", "yellow", "There is a possible change conflict between "+s.cfg.Hostname+" and bigip2.sim.local."
			}
		}
	}
	desc := func(v string) map[string]any { return map[string]any{"description": v} }
	return map[string]any{
		"kind": "tm:cm:sync-status:sync-statusstats", "selfLink": "https://localhost/mgmt/tm/cm/sync-status?ver=15.1.8",
		"entries": map[string]any{"https://localhost/mgmt/tm/cm/sync-status/0": map[string]any{"nestedStats": map[string]any{
			"entries": map[string]any{"color": desc(color), "mode": desc("high-availability"), "status": desc(status), "summary": desc(summary)},
		}}},
	}
}
