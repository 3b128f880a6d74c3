package panossim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// apiErr is an error answer: the envelope's code (may be empty) and message lines.
type apiErr struct {
	httpStatus int
	code       string
	lines      []string
}

func (e *apiErr) Error() string { return strings.Join(e.lines, "; ") }

func errorf(code, format string, args ...any) *apiErr {
	return &apiErr{httpStatus: http.StatusOK, code: code, lines: []string{fmt.Sprintf(format, args...)}}
}

// badRequest is the 400 shape seen in pango's tests: attributes with spaces and single quotes,
// message in result/msg.
func badRequest(format string, args ...any) *apiErr {
	return &apiErr{httpStatus: http.StatusBadRequest, code: "400", lines: []string{fmt.Sprintf(format, args...)}}
}

type apiKey struct {
	admin  string
	issued time.Time
}

func writeXML(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func writeErr(w http.ResponseWriter, e *apiErr) {
	var b strings.Builder
	switch e.code {
	case "400", "403":
		// Seen verbatim in pango's and pan-os-ansible's tests.
		fmt.Fprintf(&b, "<response status = 'error' code = '%s'><result><msg>%s</msg></result></response>", e.code, escape(strings.Join(e.lines, " ")))
	default:
		b.WriteString(`<response status="error"`)
		if e.code != "" {
			fmt.Fprintf(&b, ` code="%s"`, e.code)
		}
		b.WriteString("><msg>")
		for _, l := range e.lines {
			b.WriteString("<line><![CDATA[" + strings.ReplaceAll(l, "]]>", "]]]]><![CDATA[>") + "]]></line>")
		}
		b.WriteString("</msg></response>")
	}
	writeXML(w, e.httpStatus, b.String())
}

// ServeHTTP answers /api/.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.URL.Path != "/api/" && r.URL.Path != "/api" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if d := s.latency(); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if err := parseForm(r); err != nil {
		writeErr(w, err)
		return
	}
	s.calls.record(r)
	typ := r.Form.Get("type")
	if s.injectFault(w, typ, r.Form.Get("action")) {
		return
	}
	if typ == "keygen" {
		s.keygen(w, r)
		return
	}
	admin, ok := s.authenticate(r)
	if !ok {
		writeErr(w, &apiErr{httpStatus: http.StatusForbidden, code: "403", lines: []string{"Invalid credentials."}})
		return
	}
	switch typ {
	case "config":
		s.configAction(w, r, admin)
	case "op":
		s.op(w, r, admin)
	case "commit":
		s.commit(w, r, admin)
	case "export":
		s.export(w, r)
	case "import":
		s.importFile(w, r, admin)
	case "":
		writeErr(w, badRequest("Parameter \"type\" is required"))
	default:
		writeErr(w, badRequest("Invalid type %q (the simulator serves keygen, config, op, commit, export and import)", typ))
	}
}

// parseForm reads the query and the urlencoded or multipart body into r.Form.
func parseForm(r *http.Request) *apiErr {
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "multipart/form-data") {
		// Keyfactor's client: "Palo Alto API does not like double quotes around boundary".
		if strings.Contains(ct, `boundary="`) {
			return badRequest("Invalid multipart request: quoted boundary")
		}
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			return badRequest("Invalid multipart request: %v", err)
		}
		return nil
	}
	if err := r.ParseForm(); err != nil {
		return badRequest("Invalid request: %v", err)
	}
	return nil
}

func (s *Sim) admin(name string) (Admin, bool) {
	for _, a := range s.cfg.Admins {
		if a.Name == name {
			return a, true
		}
	}
	return Admin{}, false
}

func passwordOK(a Admin, password string) bool {
	return subtle.ConstantTimeCompare([]byte(a.Password), []byte(password)) == 1
}

// authenticate accepts the key in X-PAN-KEY, the key parameter, or HTTP basic credentials.
func (s *Sim) authenticate(r *http.Request) (string, bool) {
	if user, pass, ok := r.BasicAuth(); ok {
		a, found := s.admin(user)
		if !found || !passwordOK(a, pass) {
			return "", false
		}
		s.mu.Lock()
		s.seen[user] = time.Now()
		s.mu.Unlock()
		return user, true
	}
	key := r.Header.Get("X-PAN-KEY")
	if key == "" {
		key = r.Form.Get("key")
	}
	if key == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.apiKeys[key]
	if !ok {
		return "", false
	}
	if s.cfg.KeyLifetime > 0 && time.Since(k.issued) > s.cfg.KeyLifetime {
		delete(s.apiKeys, key)
		return "", false
	}
	s.seen[k.admin] = time.Now()
	return k.admin, true
}

func (s *Sim) keygen(w http.ResponseWriter, r *http.Request) {
	user, password := r.Form.Get("user"), r.Form.Get("password")
	a, ok := s.admin(user)
	if !ok || !passwordOK(a, password) {
		// pan-os-ansible's test fixture; HTTP 403 per its _validate_response.
		writeErr(w, &apiErr{httpStatus: http.StatusForbidden, code: "403", lines: []string{"Invalid Credential"}})
		return
	}
	key, err := s.IssueKey(user)
	if err != nil {
		writeErr(w, errorf("2", "internal error: %v", err))
		return
	}
	writeXML(w, http.StatusOK, `<response status="success"><result><key>`+escape(key)+`</key></result></response>`)
}

// IssueKey makes an API key for admin as keygen does (for configs that use api_key).
func (s *Sim) IssueKey(admin string) (string, error) {
	if _, ok := s.admin(admin); !ok {
		return "", fmt.Errorf("panossim: no admin %q", admin)
	}
	var b [36]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	key := "LUFRPT" + base64.StdEncoding.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.KeygenRevokesPrevious {
		for k, v := range s.apiKeys {
			if v.admin == admin {
				delete(s.apiKeys, k)
			}
		}
	}
	s.apiKeys[key] = apiKey{admin: admin, issued: time.Now()}
	s.keygens++
	return key, nil
}

// ExpireKeys invalidates every API key, as a key lifetime running out or a master key change does.
func (s *Sim) ExpireKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKeys = make(map[string]apiKey)
}

// change is one uncommitted change, replayable onto the running configuration for a partial
// commit by admin.
type change struct {
	id    int
	admin string
	apply func(root *node) *apiErr
}

// changeLocked applies a change to the candidate, checks the result against the schema, and
// records it.
func (s *Sim) changeLocked(admin string, apply func(root *node) *apiErr) *apiErr {
	next := s.candidate.clone()
	if err := apply(next); err != nil {
		return err
	}
	if err := validateConfig(next); err != nil {
		return errorf("12", "%v", err)
	}
	s.candidate = next
	s.nextChange++
	s.changes = append(s.changes, &change{id: s.nextChange, admin: admin, apply: apply})
	return nil
}

func (s *Sim) configAction(w http.ResponseWriter, r *http.Request, admin string) {
	action, xpath := r.Form.Get("action"), r.Form.Get("xpath")
	if action == "" {
		writeErr(w, badRequest("Parameter \"action\" is required"))
		return
	}
	if xpath == "" {
		writeErr(w, badRequest("Parameter \"xpath\" is required"))
		return
	}
	steps, err := parseXPath(xpath)
	if err != nil {
		writeErr(w, errorf("6", "%v", err))
		return
	}
	if (action == "set" || action == "edit" || action == "delete") && !inSchema(steps) {
		// The wording is a device's (see inSchema); the code is [UNCONFIRMED] (6, "bad xpath", in
		// pango's table).
		writeErr(w, errorf("6", "Could not find schema node for xpath %s", xpath))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	switch action {
	case "get", "show":
		root := s.candidate
		if action == "show" {
			root = s.running
		}
		found, _ := selectNodes(root, steps)
		if len(found) == 0 {
			if action == "show" {
				writeErr(w, errorf("", "No such node"))
			} else {
				writeXML(w, http.StatusOK, `<response status="success" code="7"><result/></response>`)
			}
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, `<response status="success" code="19"><result total-count="%d" count="%d">`, len(found), len(found))
		for _, n := range found {
			n.write(&b)
		}
		b.WriteString("</result></response>")
		writeXML(w, http.StatusOK, b.String())
	case "set":
		elems, perr := parseFragment(r.Form.Get("element"))
		if perr != nil {
			writeErr(w, errorf("18", "%v", perr))
			return
		}
		s.respondChange(w, s.setLocked(admin, xpath, steps, elems))
	case "edit":
		el, perr := parseElement(r.Form.Get("element"))
		if perr != nil {
			writeErr(w, errorf("18", "%v", perr))
			return
		}
		last := steps[len(steps)-1]
		if el.tag != last.tag {
			writeErr(w, errorf("12", "edit breaks config validity: element %s does not match xpath node %s", el.tag, last.tag))
			return
		}
		for _, p := range last.preds {
			if p.attr == "name" && (!el.hasName || el.name != p.value) {
				writeErr(w, errorf("12", "edit breaks config validity: entry name %q does not match the xpath's %q", el.name, p.value))
				return
			}
		}
		s.respondChange(w, s.changeLocked(admin, func(root *node) *apiErr {
			found, parents := selectNodes(root, steps)
			switch len(found) {
			case 0:
				parent, err := ensurePath(root, steps[:len(steps)-1])
				if err != nil {
					return errorf("6", "%v", err)
				}
				parent.children = append(parent.children, el.clone())
			case 1:
				for i, c := range parents[0].children {
					if c == found[0] {
						parents[0].children[i] = el.clone()
					}
				}
			default:
				return errorf("6", "edit: xpath matches %d nodes", len(found))
			}
			return nil
		}))
	case "delete":
		found, _ := selectNodes(s.candidate, steps)
		if len(found) == 0 {
			// Deleting what is not there answers success with code 7 [UNCONFIRMED].
			writeXML(w, http.StatusOK, `<response status="success" code="7"><msg>Object doesn't exist</msg></response>`)
			return
		}
		if refs := s.certificateReferences(s.candidate, found); len(refs) > 0 {
			// A certificate still referenced cannot be deleted; the exact code is [UNCONFIRMED]
			// (pango: 10 "reference count not zero").
			lines := append([]string{found[0].name + " cannot be deleted because of references from:"}, refs...)
			writeErr(w, &apiErr{httpStatus: http.StatusOK, code: "10", lines: lines})
			return
		}
		s.respondChange(w, s.changeLocked(admin, func(root *node) *apiErr {
			found, parents := selectNodes(root, steps)
			if len(found) == 0 {
				return errorf("7", "Object doesn't exist")
			}
			for i, n := range found {
				parents[i].remove(n)
			}
			return nil
		}))
	default:
		writeErr(w, badRequest("Invalid action %q (the simulator serves get, show, set, edit and delete)", action))
	}
}

// setLocked is the set action: elems merged into the candidate at the xpath, made if missing.
func (s *Sim) setLocked(admin, xpath string, steps []step, elems []*node) *apiErr {
	if !inSchema(steps) {
		return errorf("6", "Could not find schema node for xpath %s", xpath)
	}
	return s.changeLocked(admin, func(root *node) *apiErr {
		target, err := ensurePath(root, steps)
		if err != nil {
			return errorf("6", "%v", err)
		}
		target.merge(&node{children: elems})
		return nil
	})
}

func (s *Sim) respondChange(w http.ResponseWriter, err *apiErr) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeXML(w, http.StatusOK, `<response status="success" code="20"><msg>command succeeded</msg></response>`)
}

// op answers type=op.
func (s *Sim) op(w http.ResponseWriter, r *http.Request, admin string) {
	cmd, err := parseElement(r.Form.Get("cmd"))
	if err != nil {
		writeErr(w, errorf("18", "%v", err))
		return
	}
	switch {
	case cmd.tag == "request" && cmd.path("certificate", "generate") != nil:
		s.generate(w, admin, cmd.path("certificate", "generate"))
		return
	case cmd.tag == "show" && cmd.path("system", "info") != nil:
		writeXML(w, http.StatusOK, `<response status="success"><result>`+s.systemInfo()+`</result></response>`)
		return
	case cmd.tag == "show" && cmd.path("high-availability", "state") != nil:
		writeXML(w, http.StatusOK, `<response status="success"><result>`+s.haState()+`</result></response>`)
		return
	case cmd.tag == "show" && cmd.child("admins") != nil:
		writeXML(w, http.StatusOK, `<response status="success"><result>`+s.showAdmins(admin)+`</result></response>`)
		return
	case cmd.tag == "show" && cmd.child("jobs") != nil:
		s.showJobs(w, cmd.child("jobs"))
		return
	}
	writeErr(w, errorf("17", " %s -> %s  is unexpected", cmd.tag, firstChildTag(cmd)))
}

// showAdmins answers "show admins": the administrators logged in, the caller's own session
// marked with <self/> (PAN-OS 10.0+; pan-os-python's whoami reads admins/entry with admin and
// self, its test fixture adds type Web). Every admin that made an authenticated request in the
// last hour counts as logged in [UNCONFIRMED how long an API session stays listed].
func (s *Sim) showAdmins(caller string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.seen))
	for name, at := range s.seen {
		if time.Since(at) < time.Hour {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	admins := elem("admins")
	for _, name := range names {
		e := elem("entry", leaf("admin", name), leaf("from", "127.0.0.1"), leaf("type", "Web"))
		if name == caller && !s.cfg.ShowAdminsWithoutSelf {
			e.children = append(e.children, elem("self"))
		}
		admins.children = append(admins.children, e)
	}
	return admins.String()
}

func firstChildTag(n *node) string {
	if len(n.children) > 0 {
		return n.children[0].tag
	}
	return ""
}

func (s *Sim) systemInfo() string {
	multi := "off"
	if s.multiVsys() {
		multi = "on"
	}
	sys := elem("system",
		leaf("hostname", s.cfg.Hostname), leaf("ip-address", "127.0.0.1"), leaf("model", s.cfg.Model),
		leaf("serial", s.cfg.Serial), leaf("sw-version", s.cfg.SWVersion), leaf("family", "vm"),
		leaf("multi-vsys", multi), leaf("operational-mode", "normal"),
	)
	return sys.String()
}

func (s *Sim) haState() string {
	if s.cfg.HAState == "" {
		return "<enabled>no</enabled>"
	}
	group := elem("group", leaf("mode", "Active-Passive"), elem("local-info", leaf("state", s.cfg.HAState)))
	return "<enabled>yes</enabled>" + group.String()
}

func atoi(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	return n, err == nil
}
