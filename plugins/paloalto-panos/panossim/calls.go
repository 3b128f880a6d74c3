package panossim

import (
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Call is one XML API request as the simulator received it, for tests and for documenting what
// a client does. Secrets are never recorded: the key header, key=, user's password and
// passphrase parameters are left out, and of keygen only the user is kept.
type Call struct {
	Type   string
	Action string
	XPath  string
	// Cmd is the cmd parameter of op and commit requests.
	Cmd string
	// Element is the element parameter of config set and edit.
	Element string
	// Params are the other parameters (category, certificate-name, format, vsys, user, ...).
	Params map[string]string
	// File is the uploaded file's size in bytes of an import, 0 otherwise.
	File int64
}

// String is a one-line summary, e.g. "config/get /config/shared/certificate/entry[@name='x']".
func (c Call) String() string {
	var b strings.Builder
	b.WriteString(c.Type)
	if c.Action != "" {
		b.WriteString("/" + c.Action)
	}
	for _, s := range []string{c.XPath, c.Cmd, c.Element} {
		if s != "" {
			b.WriteString(" " + s)
		}
	}
	keys := make([]string, 0, len(c.Params))
	for k := range c.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + c.Params[k])
	}
	if c.File > 0 {
		b.WriteString(" +file")
	}
	return b.String()
}

// maxCalls bounds the log of a long-running simulator (certfleet-sim); the oldest go first.
const maxCalls = 10000

// secretParams are never recorded.
var secretParams = map[string]bool{"key": true, "password": true, "passphrase": true}

type callLog struct {
	mu    sync.Mutex
	calls []Call
}

func (l *callLog) record(r *http.Request) {
	c := Call{Params: map[string]string{}}
	for name, values := range r.Form {
		if len(values) == 0 || secretParams[name] {
			continue
		}
		v := values[0]
		switch name {
		case "type":
			c.Type = v
		case "action":
			c.Action = v
		case "xpath":
			c.XPath = v
		case "cmd":
			c.Cmd = v
		case "element":
			c.Element = v
		default:
			c.Params[name] = v
		}
	}
	if r.MultipartForm != nil {
		for _, files := range r.MultipartForm.File {
			for _, f := range files {
				c.File += f.Size
			}
		}
	}
	l.mu.Lock()
	if len(l.calls) == maxCalls {
		l.calls = append(l.calls[:0], l.calls[1:]...)
	}
	l.calls = append(l.calls, c)
	l.mu.Unlock()
}

// Calls returns the API requests received since Start or the last ResetCalls, oldest first
// (at most the last 10000).
func (s *Sim) Calls() []Call {
	s.calls.mu.Lock()
	defer s.calls.mu.Unlock()
	return append([]Call(nil), s.calls.calls...)
}

// ResetCalls forgets the recorded requests.
func (s *Sim) ResetCalls() {
	s.calls.mu.Lock()
	s.calls.calls = nil
	s.calls.mu.Unlock()
}
