package bigipsim

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// op is one change to the configuration: run at once, or queued in a transaction.
type op struct {
	method     string
	collection string
	item       string // full path, "" for the collection
	sub        string
	body       []byte
	// key generated before taking the lock, for sys/crypto/key outside a transaction.
	key crypto.Signer
}

type transaction struct {
	id      int64
	user    string
	state   string
	ops     []op
	created time.Time
	reason  string
}

const txnTimeout = 120 * time.Second

var collections = []string{
	"sys/crypto/key", "sys/crypto/csr", "sys/crypto/cert",
	"sys/file/ssl-cert", "sys/file/ssl-key", "sys/file/ssl-csr",
	"ltm/profile/client-ssl", "ltm/virtual", "sys/folder", "sys/config",
	"cm/device", "cm/sync-status", "cm", "transaction",
	"util/bash", "util/unix-mv", "util/unix-rm",
}

// route splits "ltm/virtual/~Common~vs1/profiles" into collection, item path and subcollection.
func route(rest string) (coll, item, sub string, ok bool) {
	for _, c := range collections {
		if rest == c {
			return c, "", "", true
		}
		if strings.HasPrefix(rest, c+"/") {
			tail := strings.TrimPrefix(rest, c+"/")
			name, sub, _ := strings.Cut(tail, "/")
			if c == "transaction" {
				return c, name, sub, true
			}
			if strings.HasPrefix(name, "~") {
				name = strings.ReplaceAll(name, "~", "/")
			} else {
				name = "/Common/" + name
			}
			return c, name, sub, true
		}
	}
	return "", "", "", false
}

func (s *Sim) tm(w http.ResponseWriter, r *http.Request, u User, body []byte) {
	if aerr := authorize(u, r.Method, r.URL.Path); aerr != nil {
		s.writeErr(w, r, body, aerr)
		return
	}
	coll, item, sub, ok := route(strings.TrimPrefix(r.URL.Path, "/mgmt/tm/"))
	if !ok {
		s.writeErr(w, r, body, errf(http.StatusNotFound, "URI path %s not registered.  Please verify URI is supported and wait for /available suffix to be responsive.", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet && len(body) > 0 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		s.writeErr(w, r, body, errf(http.StatusUnsupportedMediaType, "Found invalid content-type. The content-type must be application/json. The received content-type is %s", r.Header.Get("Content-Type")))
		return
	}
	if id := r.Header.Get("X-F5-REST-Coordination-Id"); id != "" && coll != "transaction" {
		s.queue(w, r, u, id, op{method: r.Method, collection: coll, item: item, sub: sub, body: body})
		return
	}
	if r.Method == http.MethodGet {
		s.mu.RLock()
		out, aerr := s.read(coll, item, sub, r.URL.Query())
		s.mu.RUnlock()
		if aerr != nil {
			s.writeErr(w, r, body, aerr)
			return
		}
		s.writeJSON(w, http.StatusOK, out)
		return
	}
	var out any
	var aerr *apiErr
	switch coll {
	case "transaction":
		out, aerr = s.transactionCall(r.Method, u, item, body)
	case "sys/config":
		out, aerr = s.saveConfig(body)
	case "cm":
		out, aerr = s.configSync(body)
	case "util/bash":
		out, aerr = s.bash(body)
	case "util/unix-mv", "util/unix-rm":
		out, aerr = s.unixUtil(coll, body)
	default:
		o := op{method: r.Method, collection: coll, item: item, sub: sub, body: body}
		if coll == "sys/crypto/key" && r.Method == http.MethodPost {
			// Generate outside the lock: RSA takes a while and TLS listeners read the config.
			o.key = s.pregenerate(body)
		}
		s.mu.Lock()
		st := s.running.clone()
		out, aerr = s.apply(st, o)
		if aerr == nil {
			st.generation++
			s.running = st
		}
		s.mu.Unlock()
	}
	if aerr != nil {
		s.writeErr(w, r, body, aerr)
		return
	}
	s.writeJSON(w, http.StatusOK, out)
}

func (s *Sim) queue(w http.ResponseWriter, r *http.Request, u User, idText string, o op) {
	if r.Method == http.MethodGet {
		// Reads cannot run inside a transaction (f5-ansible's TransactionContextManager note).
		s.writeErr(w, r, o.body, errf(http.StatusBadRequest, "GET requests are not supported in a transaction (id %s).", idText))
		return
	}
	switch o.collection {
	case "sys/config", "cm", "cm/device", "cm/sync-status", "util/bash", "util/unix-mv", "util/unix-rm", "sys/folder":
		// Whether util/bash joins a transaction is [UNCONFIRMED]; the sim refuses it.
		s.writeErr(w, r, o.body, errf(http.StatusBadRequest, "%s cannot be part of a transaction.", r.URL.Path))
		return
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	s.mu.Lock()
	t := s.txns[id]
	if err != nil || t == nil || t.user != u.Name {
		s.mu.Unlock()
		s.writeErr(w, r, o.body, errf(http.StatusNotFound, "Transaction with ID %s not found.", idText))
		return
	}
	if t.state != "STARTED" || time.Since(t.created) > txnTimeout {
		s.mu.Unlock()
		s.writeErr(w, r, o.body, errf(http.StatusBadRequest, "Transaction %d is in state %s and accepts no more commands.", id, t.state))
		return
	}
	t.ops = append(t.ops, o)
	cmd := commandJSON(t, len(t.ops)-1)
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, cmd)
}

// commandJSON is a queued transaction command as the device lists it under
// /mgmt/tm/transaction/<id>/commands (F5's automation lab "REST API Transactions",
// f5devcentral/f5-automation-labs docs/class1/module1/lab7.rst: the queue is listed and each
// command has an evalOrder that can be changed). The answer to the queuing request is the
// command object, not the object the command will make; the field names besides evalOrder
// are [UNCONFIRMED].
func commandJSON(t *transaction, i int) map[string]any {
	o := t.ops[i]
	uri := "https://localhost/mgmt/tm/" + o.collection
	if o.item != "" {
		uri += "/" + strings.ReplaceAll(o.item, "/", "~")
	}
	if o.sub != "" {
		uri += "/" + o.sub
	}
	out := map[string]any{
		"kind": "tm:transaction:commandsstate", "transId": t.id, "commandId": i + 1, "evalOrder": i + 1,
		"method": o.method, "uri": uri,
		"selfLink": fmt.Sprintf("https://localhost/mgmt/tm/transaction/%d/commands/%d?ver=15.1.8", t.id, i+1),
	}
	if len(o.body) > 0 {
		// The device keeps the body to run it at commit; a passphrase in it is stored encrypted.
		var body any
		if json.Unmarshal(o.body, &body) == nil {
			out["body"] = maskPassphrases(body)
		}
	}
	return out
}

// maskPassphrases replaces every "passphrase" value in a decoded JSON body with the device's
// encrypted form.
func maskPassphrases(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if p, ok := e.(string); ok && k == "passphrase" && p != "" {
				out[k] = encryptedPassphrase(p)
				continue
			}
			out[k] = maskPassphrases(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = maskPassphrases(e)
		}
		return out
	}
	return v
}

func (s *Sim) transactionCall(method string, u User, idText string, body []byte) (any, *apiErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idText == "" {
		if method != http.MethodPost {
			return nil, errf(http.StatusMethodNotAllowed, "method %s not allowed on /mgmt/tm/transaction", method)
		}
		s.nextTxn++
		t := &transaction{id: s.nextTxn, user: u.Name, state: "STARTED", created: time.Now()}
		s.txns[t.id] = t
		return transactionJSON(t), nil
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	t := s.txns[id]
	if err != nil || t == nil || t.user != u.Name {
		return nil, errf(http.StatusNotFound, "Transaction with ID %s not found.", idText)
	}
	switch method {
	case http.MethodDelete:
		delete(s.txns, id)
		return map[string]any{}, nil
	case http.MethodPatch:
		var in struct {
			State        string `json:"state"`
			ValidateOnly bool   `json:"validateOnly"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.State != "VALIDATING" {
			return nil, errf(http.StatusBadRequest, "To commit a transaction, PATCH its state to VALIDATING.")
		}
		if t.state != "STARTED" {
			return nil, errf(http.StatusBadRequest, "Transaction %d is in state %s.", id, t.state)
		}
		if time.Since(t.created) > txnTimeout {
			t.state = "EXPIRED"
			return nil, errf(http.StatusBadRequest, "Transaction %d expired after %d seconds.", id, int(txnTimeout/time.Second))
		}
		st := s.running.clone()
		for _, o := range t.ops {
			if _, aerr := s.apply(st, o); aerr != nil {
				t.state, t.reason = "FAILED", aerr.message
				return nil, errf(http.StatusBadRequest, "transaction failed:%s", aerr.message)
			}
		}
		t.state = "COMPLETED"
		if !in.ValidateOnly && len(t.ops) > 0 {
			st.generation++
			s.running = st
		}
		return transactionJSON(t), nil
	}
	return nil, errf(http.StatusMethodNotAllowed, "method %s not allowed on a transaction", method)
}

func transactionJSON(t *transaction) map[string]any {
	return map[string]any{
		"transId": t.id, "state": t.state, "timeoutSeconds": int(txnTimeout / time.Second), "asyncExecution": false,
		"validateOnly": false, "executionTimeout": 300, "executionTime": 0, "failureReason": t.reason,
		"kind": "tm:transactionstate", "selfLink": fmt.Sprintf("https://localhost/mgmt/tm/transaction/%d?ver=15.1.8", t.id),
	}
}

func (s *Sim) saveConfig(body []byte) (any, *apiErr) {
	var in struct {
		Command string `json:"command"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Command != "save" {
		return nil, errf(http.StatusBadRequest, "bigipsim simulates only {\"command\":\"save\"} on /mgmt/tm/sys/config")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = s.running.clone()
	s.saves++
	return map[string]any{"kind": "tm:sys:config:savestate", "command": "save"}, nil
}

func (s *Sim) configSync(body []byte) (any, *apiErr) {
	var in struct {
		Command     string `json:"command"`
		UtilCmdArgs string `json:"utilCmdArgs"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Command != "run" {
		return nil, errf(http.StatusBadRequest, "want {\"command\":\"run\",\"utilCmdArgs\":\"config-sync to-group <group>\"}")
	}
	f := strings.Fields(in.UtilCmdArgs)
	if len(f) != 3 || f[0] != "config-sync" || f[1] != "to-group" {
		return nil, errf(http.StatusBadRequest, "bigipsim simulates only \"config-sync to-group <group>\", not %q", in.UtilCmdArgs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	known := false
	for _, g := range s.cfg.DeviceGroups {
		known = known || g == f[2]
	}
	if !known {
		return nil, missingRef("device group", "/Common/"+f[2])
	}
	if !s.syncDisconnected {
		s.synced[f[2]] = s.running.generation
	}
	return map[string]any{"kind": "tm:cm:runstate", "command": "run", "utilCmdArgs": in.UtilCmdArgs}, nil
}

// apply runs one change on st (a copy of the running configuration).
func (s *Sim) apply(st *state, o op) (any, *apiErr) {
	switch {
	case o.collection == "sys/crypto/key" && o.method == http.MethodPost && o.item == "":
		return s.createKey(st, o)
	case o.collection == "sys/crypto/csr" && o.method == http.MethodPost && o.item == "":
		return s.createCSR(st, o.body)
	case o.collection == "sys/crypto/cert" && o.method == http.MethodPost && o.item == "" && strings.Contains(string(o.body), `"command"`):
		return s.installCert(st, o.body)
	case o.collection == "sys/crypto/cert" && o.method == http.MethodPost && o.item == "":
		return s.certFromKey(st, o.body)
	case (o.collection == "sys/file/ssl-cert" || o.collection == "sys/crypto/cert") && o.method == http.MethodDelete && o.item != "":
		return deleteCert(st, o.item)
	case (o.collection == "sys/file/ssl-key" || o.collection == "sys/crypto/key") && o.method == http.MethodDelete && o.item != "":
		return deleteKey(st, o.item)
	case (o.collection == "sys/file/ssl-csr" || o.collection == "sys/crypto/csr") && o.method == http.MethodDelete && o.item != "":
		return s.deleteCSR(st, o.item)
	case o.collection == "ltm/profile/client-ssl" && o.method == http.MethodPost && o.item == "":
		return createProfile(st, o.body)
	case o.collection == "ltm/profile/client-ssl" && o.method == http.MethodPatch && o.item != "":
		return s.patchProfile(st, o.item, o.body)
	case o.collection == "ltm/profile/client-ssl" && o.method == http.MethodDelete && o.item != "":
		return deleteProfile(st, o.item)
	case o.collection == "ltm/virtual" && o.method == http.MethodPatch && o.item != "" && o.sub == "":
		return patchVirtual(st, o.item, o.body)
	}
	return nil, errf(http.StatusMethodNotAllowed, "bigipsim does not simulate %s on /mgmt/tm/%s", o.method, o.collection)
}

// fields decodes a JSON object and rejects names outside allowed, the way BIG-IP does.
func fields(body []byte, collection string, allowed ...string) (map[string]any, *apiErr) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errf(http.StatusBadRequest, "Invalid JSON body: %v", err)
	}
	readOnly := map[string]bool{"kind": true, "selfLink": true, "fullPath": true, "generation": true}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for k, v := range m {
		if readOnly[k] {
			delete(m, k)
			continue
		}
		if !ok[k] {
			val, _ := json.Marshal(v)
			return nil, errf(http.StatusBadRequest, "Found unexpected json pair at configuration item /%s/. The json pair \"%s\":%s is not allowed.", collection, k, val)
		}
	}
	return m, nil
}

func str(m map[string]any, k string) (string, *apiErr) {
	v, ok := m[k]
	if !ok || v == nil {
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", errf(http.StatusBadRequest, "property %q must be a string", k)
}

// pregenerate makes the key a sys/crypto/key POST asks for; nil when the body is not usable
// (apply then reports why).
func (s *Sim) pregenerate(body []byte) crypto.Signer {
	m, aerr := fields(body, "sys/crypto/key", keyFields...)
	if aerr != nil {
		return nil
	}
	kt, size, curve, aerr := keyParams(m)
	if aerr != nil {
		return nil
	}
	k, err := s.generateKey(kt, size, curve)
	if err != nil {
		return nil
	}
	return k
}

var keyFields = []string{"name", "partition", "keyType", "keySize", "curveName", "securityType", "passphrase", "description"}

func keyParams(m map[string]any) (keyType string, size int, curve string, aerr *apiErr) {
	keyType, aerr = str(m, "keyType")
	if aerr != nil {
		return
	}
	if keyType == "" {
		keyType = "rsa-private"
	}
	sizeText, aerr := str(m, "keySize")
	if aerr != nil {
		return
	}
	curve, aerr = str(m, "curveName")
	if aerr != nil {
		return
	}
	switch keyType {
	case "rsa-private":
		size = 2048
		if sizeText != "" {
			n, err := strconv.Atoi(sizeText)
			if err != nil || (n != 1024 && n != 2048 && n != 3072 && n != 4096) {
				return "", 0, "", errf(http.StatusBadRequest, "01070311:3: Invalid key size (%s); valid sizes are 1024, 2048, 3072 and 4096.", sizeText)
			}
			size = n
		}
		curve = "none"
	case "ec-private":
		// secp521r1 on BIG-IP is [UNCONFIRMED]; the sim offers the two curves the reference names.
		switch curve {
		case "prime256v1":
			size = 256
		case "secp384r1":
			size = 384
		default:
			return "", 0, "", errf(http.StatusBadRequest, "01070311:3: Invalid curve name (%s); valid curves are prime256v1 and secp384r1.", curve)
		}
	default:
		return "", 0, "", errf(http.StatusBadRequest, "01070311:3: Invalid key type (%s); valid types are rsa-private and ec-private.", keyType)
	}
	return keyType, size, curve, nil
}

// createKey is "create sys crypto key": the key is made on the box and never leaves it.
// As a create body, these property names are [UNCONFIRMED]; they are the names GET returns.
func (s *Sim) createKey(st *state, o op) (any, *apiErr) {
	m, aerr := fields(o.body, "sys/crypto/key", keyFields...)
	if aerr != nil {
		return nil, aerr
	}
	name, _ := str(m, "name")
	partition, _ := str(m, "partition")
	path, err := fullPath(name, partition)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070022:3: %v", err)
	}
	if p, _ := splitPath(path); !st.folders[p] {
		return nil, missingRef("folder", "/"+p)
	}
	if _, ok := st.keys[path]; ok {
		return nil, exists("key", path)
	}
	keyType, size, curve, aerr := keyParams(m)
	if aerr != nil {
		return nil, aerr
	}
	security, aerr := str(m, "securityType")
	if aerr != nil {
		return nil, aerr
	}
	pass, aerr := str(m, "passphrase")
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case security == "" && pass != "":
		security = "password"
	case security == "":
		security = "normal"
	}
	switch security {
	case "password":
		if pass == "" {
			return nil, errf(http.StatusBadRequest, "01070313:3: A passphrase is required for a key with security-type password (%s).", path)
		}
	case "normal":
		if pass != "" {
			return nil, errf(http.StatusBadRequest, "01070313:3: A passphrase was given for key %s, whose security-type is normal.", path)
		}
	default:
		return nil, errf(http.StatusBadRequest, "01070311:3: Unsupported security-type (%s); bigipsim has no FIPS or NetHSM.", security)
	}
	signer := o.key
	if signer == nil || !matchesParams(signer, keyType, size) {
		var err error
		if signer, err = s.generateKey(keyType, size, curve); err != nil {
			return nil, errf(http.StatusBadRequest, "01070311:3: key generation failed: %v", err)
		}
	}
	if s.cfg.KeyCreateIgnoresProtection {
		pass = ""
	}
	k := keyObj{path: path, signer: signer, keyType: keyType, keySize: size, curve: curve, passphrase: pass, created: time.Now()}
	st.keys[path] = k
	return cryptoKeyJSON(k), nil
}

func matchesParams(k crypto.Signer, keyType string, size int) bool {
	kt, sz, _ := publicKeyInfo(k.Public())
	return strings.TrimSuffix(kt, "-public") == strings.TrimSuffix(keyType, "-private") && sz == size
}

var (
	csrCamel  = []string{"name", "partition", "key", "commonName", "organization", "ou", "city", "state", "country", "emailAddress", "subjectAlternativeName", "challengePassword", "passphrase", "description"}
	csrHyphen = []string{"name", "partition", "key", "common-name", "organization", "ou", "city", "state", "country", "email-address", "subject-alternative-name", "challenge-password", "passphrase", "description"}
)

// createCSR is "create sys crypto csr" from an existing key.
func (s *Sim) createCSR(st *state, body []byte) (any, *apiErr) {
	allowed, cn, email, san := csrCamel, "commonName", "emailAddress", "subjectAlternativeName"
	if s.cfg.CSRHyphenatedFields {
		allowed, cn, email, san = csrHyphen, "common-name", "email-address", "subject-alternative-name"
	}
	m, aerr := fields(body, "sys/crypto/csr", allowed...)
	if aerr != nil {
		return nil, aerr
	}
	get := func(k string) string { v, _ := str(m, k); return v }
	path, err := fullPath(get("name"), get("partition"))
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070022:3: %v", err)
	}
	part, short := splitPath(path)
	if !st.folders[part] {
		return nil, missingRef("folder", "/"+part)
	}
	if _, ok := st.csrs[path]; ok {
		return nil, exists("Certificate Signing Request", path)
	}
	if get("key") == "" {
		return nil, errf(http.StatusBadRequest, "01070022:3: The key of a CSR (%s) must be given.", path)
	}
	keyPath, err := fullPath(get("key"), part)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070022:3: %v", err)
	}
	k, ok := st.keys[keyPath]
	if !ok {
		return nil, missingRef("key", keyPath)
	}
	if !canReference(path, keyPath) {
		return nil, errf(http.StatusBadRequest, "01070726:3: CSR %s in partition %s cannot reference key %s.", path, part, keyPath)
	}
	sub := csrSubject{commonName: get(cn), organization: get("organization"), ou: get("ou"), city: get("city"),
		state: get("state"), country: get("country"), email: get(email)}
	if sub.commonName == "" {
		return nil, errf(http.StatusBadRequest, "01070022:3: The common name of a CSR (%s) must be given.", path)
	}
	if sub.country != "" && (len(sub.country) != 2 || strings.ToUpper(sub.country) != sub.country) {
		return nil, errf(http.StatusBadRequest, "01070022:3: The country of a CSR must be a two-letter code, not %q.", sub.country)
	}
	if k.passphrase != "" {
		given := get("passphrase")
		if (s.cfg.CSRNeedsPassphrase || given != "") && !passwordsEqual(given, k.passphrase) {
			return nil, errf(http.StatusBadRequest, "01070313:3: Error reading key PEM file %s for csr %s: error:0906A068:PEM routines:PEM_do_header:bad password read", keyPath, path)
		}
	}
	pemText, err := makeCSR(k.signer, sub, get(san))
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070022:3: %v", err)
	}
	sys := "/config/ssl/ssl.csr/" + short
	if part != "Common" {
		// Where a non-Common CSR file lives is [UNCONFIRMED]; this is the filestore layout.
		sys = fmt.Sprintf("/config/filestore/files_d/%s_d/certificate_signing_request_d/:%s:%s_1", part, part, short)
	}
	c := csrObj{path: path, key: keyPath, pem: pemText, systemPath: sys, created: time.Now()}
	st.csrs[path] = c
	s.files[sys] = []byte(pemText)
	return map[string]any{"kind": "tm:sys:crypto:csr:csrstate", "name": short, "partition": part, "fullPath": path,
		"key": keyPath, "commonName": sub.commonName}, nil
}

// installCert is "install sys crypto cert ... from-local-file": a new object, or the content of an
// existing one replaced in place (profiles that name it then serve the new certificate).
func (s *Sim) installCert(st *state, body []byte) (any, *apiErr) {
	m, aerr := fields(body, "sys/crypto/cert", "command", "name", "partition", "from-local-file", "fromLocalFile", "description")
	if aerr != nil {
		return nil, aerr
	}
	get := func(k string) string { v, _ := str(m, k); return v }
	if get("command") != "install" {
		return nil, errf(http.StatusBadRequest, "bigipsim simulates only command install on sys/crypto/cert")
	}
	file := get("from-local-file")
	if file == "" {
		file = get("fromLocalFile")
	}
	data, ok := s.files[file]
	if !ok {
		return nil, errf(http.StatusBadRequest, "01070712:3: Caught SSL exception: unable to open file %s: No such file or directory.", file)
	}
	certs, err := sdk.ParseCertificatesPEM(string(data))
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070712:3: Caught SSL exception: Error reading certificate from %s.", file)
	}
	path, perr := fullPath(get("name"), get("partition"))
	if perr != nil {
		return nil, errf(http.StatusBadRequest, "01070022:3: %v", perr)
	}
	part, short := splitPath(path)
	if !st.folders[part] {
		return nil, missingRef("folder", "/"+part)
	}
	// Installing over a certificate a profile serves with a key the new certificate is not for is
	// refused (01070317 on 13.1, 16.1, 17.5: colin-stubbs/dehydrated-bigip#11,
	// F5Networks/f5-ansible#1217 and #2505); a chain bundle is not checked against a key.
	for _, prof := range sortedProfiles(st) {
		for _, e := range prof.entries {
			if e.cert == path && !publicKeysMatch(certs[0], st.keys[e.key].signer) {
				return nil, mismatch(prof.path)
			}
		}
	}
	now := time.Now()
	c, existed := st.certs[path]
	if !existed {
		c = certObj{path: path, created: now}
	}
	c.certs, c.updated = certs, now
	st.certs[path] = c
	return map[string]any{"kind": "tm:sys:crypto:cert:certstate", "command": "install", "name": short, "partition": part,
		"fullPath": path, "from-local-file": file}, nil
}

// certFromKey is "create sys crypto cert <name> key <key> common-name <cn> lifetime <days>": a
// self-signed certificate made on the box from an existing key. The tmsh command is how F5's
// manuals renew a self-signed device certificate; its REST body (the tmsh options in camelCase,
// as for sys/crypto/csr) is [UNCONFIRMED], and so is whether a protected key needs its
// passphrase here (Config.CertFromKeyNeedsPassphrase).
func (s *Sim) certFromKey(st *state, body []byte) (any, *apiErr) {
	m, aerr := fields(body, "sys/crypto/cert", "name", "partition", "key", "commonName", "lifetime", "passphrase", "description")
	if aerr != nil {
		return nil, aerr
	}
	get := func(k string) string { v, _ := str(m, k); return v }
	path, err := fullPath(get("name"), get("partition"))
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070022:3: %v", err)
	}
	part, short := splitPath(path)
	if !st.folders[part] {
		return nil, missingRef("folder", "/"+part)
	}
	if _, ok := st.certs[path]; ok {
		return nil, exists("Certificate", path)
	}
	keyPath, err := fullPath(get("key"), part)
	if err != nil || get("key") == "" {
		return nil, errf(http.StatusBadRequest, "01070022:3: The key of certificate %s must be given.", path)
	}
	k, ok := st.keys[keyPath]
	if !ok {
		return nil, errf(http.StatusBadRequest, "01070277:3: The requested key (%s) was not found.", keyPath)
	}
	if k.passphrase != "" {
		given := get("passphrase")
		if (s.cfg.CertFromKeyNeedsPassphrase || given != "") && !passwordsEqual(given, k.passphrase) {
			return nil, errf(http.StatusBadRequest, "01070313:3: Error reading key PEM file %s for certificate %s: error:0906A068:PEM routines:PEM_do_header:bad password read", keyPath, path)
		}
	}
	cn := get("commonName")
	if cn == "" {
		return nil, errf(http.StatusBadRequest, "01070022:3: The common name of certificate %s must be given.", path)
	}
	days, convErr := strconv.Atoi(get("lifetime"))
	if get("lifetime") == "" {
		days, convErr = 365, nil
	}
	if convErr != nil || days < 1 {
		return nil, errf(http.StatusBadRequest, "01070022:3: Invalid lifetime %q for certificate %s.", get("lifetime"), path)
	}
	cert, err := selfSignedWith(k.signer, cn, time.Duration(days)*24*time.Hour)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070712:3: Caught SSL exception: %v", err)
	}
	now := time.Now()
	st.certs[path] = certObj{path: path, certs: []*x509.Certificate{cert}, created: now, updated: now}
	return map[string]any{"kind": "tm:sys:crypto:cert:certstate", "name": short, "partition": part, "fullPath": path,
		"key": keyPath, "commonName": cn}, nil
}

func sortedProfiles(st *state) []profileObj {
	paths := slices.Sorted(maps.Keys(st.clientSSL))
	out := make([]profileObj, 0, len(paths))
	for _, p := range paths {
		out = append(out, st.clientSSL[p])
	}
	return out
}

func deleteCert(st *state, path string) (any, *apiErr) {
	if _, ok := st.certs[path]; !ok {
		return nil, notFound("Certificate File Object", path)
	}
	if users := st.certInUse(path); len(users) > 0 {
		// The id and wording of the in-use refusal are [UNCONFIRMED].
		return nil, errf(http.StatusBadRequest, "01070621:3: The certificate (%s) is in use by client-ssl profile (%s).", path, users[0])
	}
	delete(st.certs, path)
	return map[string]any{}, nil
}

func deleteKey(st *state, path string) (any, *apiErr) {
	if _, ok := st.keys[path]; !ok {
		return nil, notFound("Certificate Key File Object", path)
	}
	if users := st.keyInUse(path); len(users) > 0 {
		return nil, errf(http.StatusBadRequest, "01070621:3: The key (%s) is in use by client-ssl profile (%s).", path, users[0])
	}
	delete(st.keys, path)
	return map[string]any{}, nil
}

func (s *Sim) deleteCSR(st *state, path string) (any, *apiErr) {
	c, ok := st.csrs[path]
	if !ok {
		return nil, notFound("Certificate Signing Request File Object", path)
	}
	delete(st.csrs, path)
	delete(s.files, c.systemPath)
	return map[string]any{}, nil
}

var profileFields = append([]string{"name", "partition", "defaultsFrom", "certKeyChain", "cert", "key", "chain", "passphrase", "serverName", "sniDefault", "description"}, profileSettings...)

func createProfile(st *state, body []byte) (any, *apiErr) {
	m, aerr := fields(body, "ltm/profile/client-ssl", profileFields...)
	if aerr != nil {
		return nil, aerr
	}
	name, _ := str(m, "name")
	partition, _ := str(m, "partition")
	path, err := fullPath(name, partition)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070022:3: %v", err)
	}
	part, _ := splitPath(path)
	if !st.folders[part] {
		return nil, missingRef("folder", "/"+part)
	}
	if _, ok := st.clientSSL[path]; ok {
		return nil, exists("client-ssl profile", path)
	}
	if st.otherProfiles[path] != "" {
		return nil, exists("profile", path)
	}
	parentName, _ := str(m, "defaultsFrom")
	if parentName == "" {
		parentName = "/Common/clientssl"
	}
	parentPath, err := fullPath(parentName, part)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "01070022:3: %v", err)
	}
	parent, ok := st.clientSSL[parentPath]
	if !ok {
		return nil, missingRef("client-ssl profile", parentPath)
	}
	p := profileObj{path: path, defaultsFrom: parentPath, entries: parent.entries, settings: map[string]any{}}
	if aerr := updateProfile(st, &p, m); aerr != nil {
		return nil, aerr
	}
	st.clientSSL[path] = p
	return profileJSON(st, p), nil
}

func (s *Sim) patchProfile(st *state, path string, body []byte) (any, *apiErr) {
	p, ok := st.clientSSL[path]
	if !ok {
		return nil, notFound("client-ssl profile", path)
	}
	m, aerr := fields(body, "ltm/profile/client-ssl", profileFields...)
	if aerr != nil {
		return nil, aerr
	}
	delete(m, "name")
	delete(m, "partition")
	p.settings = maps.Clone(p.settings)
	if v, ok := m["defaultsFrom"]; ok {
		name, _ := v.(string)
		part, _ := splitPath(path)
		parentPath, err := fullPath(name, part)
		if err != nil {
			return nil, errf(http.StatusBadRequest, "01070022:3: %v", err)
		}
		if parentPath != p.defaultsFrom {
			if s.cfg.ParentImmutable {
				// [UNCONFIRMED] id and wording; see Config.ParentImmutable.
				return nil, errf(http.StatusBadRequest, "01070734:3: Configuration error: the parent profile (defaults-from) of client-ssl profile %s cannot be changed.", path)
			}
			if _, ok := st.clientSSL[parentPath]; !ok {
				return nil, missingRef("client-ssl profile", parentPath)
			}
			if !canReference(path, parentPath) {
				return nil, errf(http.StatusBadRequest, "01070726:3: Client SSL profile (%s) cannot reference %s in another partition.", path, parentPath)
			}
			for cur := parentPath; cur != ""; cur = st.clientSSL[cur].defaultsFrom {
				if cur == path {
					return nil, errf(http.StatusBadRequest, "01070734:3: Configuration error: client-ssl profile %s cannot inherit from itself (through %s).", path, parentPath)
				}
			}
			p.defaultsFrom = parentPath
		}
	}
	if aerr := updateProfile(st, &p, m); aerr != nil {
		return nil, aerr
	}
	st.clientSSL[path] = p
	// A change of sniDefault may break a virtual server that carries the profile.
	for _, v := range st.profileInUse(path) {
		if aerr := checkSNI(st, st.virtuals[v]); aerr != nil {
			return nil, aerr
		}
	}
	return profileJSON(st, p), nil
}

// updateProfile applies certKeyChain (replacing the whole array [UNCONFIRMED: replace, not
// merge]), or the legacy cert/key/chain/passphrase (which set the default entry), serverName and
// sniDefault. Every pair is checked: objects exist, the certificate is for the key, and a
// password-protected key comes with its passphrase.
func updateProfile(st *state, p *profileObj, m map[string]any) *apiErr {
	_, hasChain := m["certKeyChain"]
	legacy := false
	for _, k := range []string{"cert", "key", "chain", "passphrase"} {
		if _, ok := m[k]; ok {
			legacy = true
		}
	}
	if hasChain && legacy {
		return errf(http.StatusBadRequest, "01b4002a:3: Client SSL profile (%s):cert-key-chain and profile cert/key/chain/passphrase options cannot be specified together.", p.path)
	}
	part, _ := splitPath(p.path)
	resolve := func(name string) string {
		if name == "" || name == "none" {
			return ""
		}
		if strings.HasPrefix(name, "/") {
			return name
		}
		if own := "/" + part + "/" + name; st.certs[own].path != "" || st.keys[own].path != "" {
			return own
		}
		return "/Common/" + name
	}
	type entryIn struct {
		Name       string `json:"name"`
		Cert       string `json:"cert"`
		Key        string `json:"key"`
		Chain      string `json:"chain"`
		Passphrase string `json:"passphrase"`
		AppService string `json:"appService"`
	}
	var in []entryIn
	switch {
	case hasChain:
		raw, _ := json.Marshal(m["certKeyChain"])
		var items []map[string]any
		if err := json.Unmarshal(raw, &items); err != nil {
			return errf(http.StatusBadRequest, "certKeyChain must be an array of objects")
		}
		for _, it := range items {
			itemRaw, _ := json.Marshal(it)
			if _, aerr := fields(itemRaw, "ltm/profile/client-ssl/certKeyChain", "name", "cert", "key", "chain", "passphrase", "appService"); aerr != nil {
				return aerr
			}
			var e entryIn
			_ = json.Unmarshal(itemRaw, &e)
			in = append(in, e)
		}
	case legacy:
		e := entryIn{Name: "default"}
		if len(p.entries) > 0 {
			e = entryIn{Name: p.entries[0].name, Cert: p.entries[0].cert, Key: p.entries[0].key, Chain: p.entries[0].chain}
		}
		for k, dst := range map[string]*string{"cert": &e.Cert, "key": &e.Key, "chain": &e.Chain, "passphrase": &e.Passphrase} {
			if v, ok := m[k]; ok {
				s, _ := v.(string)
				*dst = s
			}
		}
		in = []entryIn{e}
		if len(p.entries) > 1 {
			for _, old := range p.entries[1:] {
				in = append(in, entryIn{Name: old.name, Cert: old.cert, Key: old.key, Chain: old.chain, Passphrase: "\x00keep"})
			}
		}
	}
	if hasChain || legacy {
		if len(in) == 0 {
			return errf(http.StatusBadRequest, "01070734:3: Client SSL profile (%s) must have at least one certificate/key pair. [UNCONFIRMED]", p.path)
		}
		var entries []chainEntry
		seenType := map[string]bool{}
		for i, e := range in {
			ce := chainEntry{name: e.Name, cert: resolve(e.Cert), key: resolve(e.Key), chain: resolve(e.Chain)}
			if ce.cert == "" || ce.key == "" {
				return errf(http.StatusBadRequest, "01070734:3: Client SSL profile (%s): every cert-key-chain entry needs a cert and a key.", p.path)
			}
			c, ok := st.certs[ce.cert]
			if !ok {
				return missingRef("certificate", ce.cert)
			}
			k, ok := st.keys[ce.key]
			if !ok {
				return errf(http.StatusBadRequest, "01070277:3: The requested key (%s) was not found.", ce.key)
			}
			if ce.chain != "" {
				if _, ok := st.certs[ce.chain]; !ok {
					return missingRef("certificate", ce.chain)
				}
			}
			for _, ref := range []string{ce.cert, ce.key, ce.chain} {
				if ref != "" && !canReference(p.path, ref) {
					return errf(http.StatusBadRequest, "01070726:3: Client SSL profile (%s) cannot reference %s in another partition.", p.path, ref)
				}
			}
			// 01070317 is what BIG-IP 13.1, 16.1 and 17.5 answer for a profile whose pair does not
			// match (colin-stubbs/dehydrated-bigip#11, F5Networks/f5-ansible#1217 and #2505).
			if !publicKeysMatch(c.certs[0], k.signer) {
				return mismatch(p.path)
			}
			if k.passphrase != "" && e.Passphrase != "\x00keep" && !passwordsEqual(e.Passphrase, k.passphrase) {
				return errf(http.StatusBadRequest, "01070313:3: Error reading key PEM file %s for profile %s: error:0906A068:PEM routines:PEM_do_header:bad password read", ce.key, p.path)
			}
			kt, _, _ := publicKeyInfo(k.signer.Public())
			if seenType[kt] {
				return errf(http.StatusBadRequest, "010717e3:3: Client SSL profile (%s) cannot have more than one certificate/key pair of the same type. [UNCONFIRMED]", p.path)
			}
			seenType[kt] = true
			if ce.name == "" {
				_, certShort := splitPath(ce.cert)
				ce.name = fmt.Sprintf("%s_%d", certShort, i)
			}
			entries = append(entries, ce)
		}
		p.entries = entries
	}
	for _, k := range profileSettings {
		if v, ok := m[k]; ok {
			if p.settings == nil {
				p.settings = map[string]any{}
			}
			p.settings[k] = v
		}
	}
	if v, ok := m["caFile"].(string); ok && v != "none" && v != "" {
		if ca := resolve(v); st.certs[ca].path == "" {
			return missingRef("certificate", ca)
		}
	}
	if v, ok := m["description"].(string); ok {
		p.description = v
	}
	if v, ok := m["serverName"]; ok {
		name, _ := v.(string)
		if name == "none" {
			name = ""
		}
		p.serverName = name
	}
	if v, ok := m["sniDefault"]; ok {
		switch x := v.(type) {
		case bool:
			p.sniDefault = x
		case string:
			p.sniDefault = x == "true" || x == "enabled"
		}
	}
	return nil
}

// mismatch is the device's refusal of a profile whose certificate is not for its key.
func mismatch(profile string) *apiErr {
	return errf(http.StatusBadRequest, "01070317:3: profile %s's key and certificate do not match", profile)
}

func deleteProfile(st *state, path string) (any, *apiErr) {
	if _, ok := st.clientSSL[path]; !ok {
		return nil, notFound("client-ssl profile", path)
	}
	if path == "/Common/clientssl" {
		// The id and wording of this refusal and of the next are [UNCONFIRMED].
		return nil, errf(http.StatusBadRequest, "01070083:3: The built-in profile (%s) cannot be deleted.", path)
	}
	if users := st.profileInUse(path); len(users) > 0 {
		// As BIG-IP 13.1.1.5 and 16.1.4.1 answer (F5Networks/k8s-bigip-ctlr#1135,
		// F5Networks/terraform-provider-bigip#914).
		return nil, errf(http.StatusBadRequest, "01070265:3: The ClientSSL Profile (%s) cannot be deleted because it is in use by a virtual server profile (%s %s).", path, users[0], path)
	}
	for _, p := range st.clientSSL {
		if p.defaultsFrom == path {
			return nil, errf(http.StatusBadRequest, "01070083:3: Cannot delete profile (%s) because profile (%s) inherits from it.", path, p.path)
		}
	}
	delete(st.clientSSL, path)
	return map[string]any{}, nil
}

// patchVirtual replaces a virtual server's profile list (the whole list, as f5-ansible and
// Terraform send it).
func patchVirtual(st *state, path string, body []byte) (any, *apiErr) {
	v, ok := st.virtuals[path]
	if !ok {
		return nil, notFound("Virtual Server", path)
	}
	m, aerr := fields(body, "ltm/virtual", "profiles", "description")
	if aerr != nil {
		return nil, aerr
	}
	if raw, ok := m["profiles"]; ok {
		data, _ := json.Marshal(raw)
		var items []struct {
			Name      string `json:"name"`
			Partition string `json:"partition"`
			Context   string `json:"context"`
		}
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, errf(http.StatusBadRequest, "profiles must be an array of {name, context}")
		}
		part, _ := splitPath(path)
		var out []attachedProfile
		seen := map[string]bool{}
		for _, it := range items {
			pp := it.Name
			if !strings.HasPrefix(pp, "/") {
				p := it.Partition
				if p == "" {
					p = part
				}
				pp = "/" + p + "/" + it.Name
				if st.clientSSL[pp].path == "" && st.otherProfiles[pp] == "" {
					pp = "/Common/" + it.Name
				}
			}
			_, isSSL := st.clientSSL[pp]
			if !isSSL && st.otherProfiles[pp] == "" {
				return nil, missingRef("profile", pp)
			}
			if !canReference(path, pp) {
				return nil, errf(http.StatusBadRequest, "01070726:3: Virtual server (%s) cannot reference profile %s in another partition.", path, pp)
			}
			if seen[pp] {
				return nil, errf(http.StatusBadRequest, "01070734:3: Configuration error: profile %s is listed twice for virtual server %s.", pp, path)
			}
			seen[pp] = true
			ctx := it.Context
			switch {
			case ctx == "" && isSSL:
				ctx = "clientside"
			case ctx == "":
				ctx = "all"
			case isSSL && ctx != "clientside":
				return nil, errf(http.StatusBadRequest, "01070734:3: Configuration error: client-ssl profile %s must be clientside on virtual server %s.", pp, path)
			}
			out = append(out, attachedProfile{path: pp, context: ctx})
		}
		v.profiles = out
	}
	if aerr := checkSNI(st, v); aerr != nil {
		return nil, aerr
	}
	st.virtuals[path] = v
	return virtualJSON(st, v, true), nil
}

// checkSNI: a virtual server with several client-ssl profiles needs exactly one SNI default.
// The message ids are [UNCONFIRMED].
func checkSNI(st *state, v virtualObj) *apiErr {
	profiles := st.clientSSLOf(v)
	if len(profiles) < 2 {
		return nil
	}
	defaults := 0
	for _, p := range profiles {
		if p.sniDefault {
			defaults++
		}
	}
	switch {
	case defaults == 0:
		return errf(http.StatusBadRequest, "01070097:3: Virtual server %s has more than one clientssl profile but none of them is default for SNI.", v.path)
	case defaults > 1:
		return errf(http.StatusBadRequest, "01070097:3: Virtual server %s has more than one clientssl profile marked as default for SNI.", v.path)
	}
	return nil
}
