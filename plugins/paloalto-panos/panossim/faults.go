package panossim

import (
	"net/http"
	"time"
)

// FaultKind is a way a request can fail.
type FaultKind int

const (
	// FaultUnavailable answers HTTP 503 with an HTML page, as while the management server restarts.
	FaultUnavailable FaultKind = iota + 1
	// FaultDropConnection closes the connection without an answer.
	FaultDropConnection
	// FaultInternalError answers an error envelope with code 21 (internal error).
	FaultInternalError
	// FaultForbidden answers 403 as for an expired or revoked key, whatever key was sent.
	FaultForbidden
	// FaultSessionTimeout answers code 22 (session timed out).
	FaultSessionTimeout
)

// Fault fails the next Count requests of Type ("keygen", "config", "op", "commit", "export",
// "import"; "" for any) and, when set, of config Action ("get", "set", "delete", ...), after
// letting After matching requests through.
type Fault struct {
	Kind   FaultKind
	Count  int
	Type   string
	Action string
	After  int
}

type faults struct {
	latency        time.Duration
	queue          []Fault
	failCommits    int
	commitMessages []string
}

// InjectFault queues f; faults apply in the order injected.
func (s *Sim) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.queue = append(s.faults.queue, f)
}

// ClearFaults drops queued faults, latency and commit failures.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = faults{}
}

// SetLatency delays every API answer by d.
func (s *Sim) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.latency = d
}

// FailCommits makes the next n commit jobs end FIN/FAIL with messages in their details (a
// validation error, a content-update conflict, ...); the candidate stays as it was.
func (s *Sim) FailCommits(n int, messages ...string) {
	if len(messages) == 0 {
		messages = []string{"Validation Error:", "injected commit failure"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.failCommits = n
	s.faults.commitMessages = append([]string(nil), messages...)
}

func (s *Sim) latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.latency
}

// injectFault answers with the first queued fault matching typ, if any.
func (s *Sim) injectFault(w http.ResponseWriter, typ, action string) bool {
	s.mu.Lock()
	var kind FaultKind
	for i := range s.faults.queue {
		f := &s.faults.queue[i]
		if (f.Type != "" && f.Type != typ) || (f.Action != "" && f.Action != action) {
			continue
		}
		if f.After > 0 {
			f.After--
			break
		}
		kind = f.Kind
		if f.Count--; f.Count == 0 {
			s.faults.queue = append(s.faults.queue[:i], s.faults.queue[i+1:]...)
		}
		break
	}
	s.mu.Unlock()
	switch kind {
	case FaultUnavailable:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html><head><title>503 Service Unavailable</title></head><body>Service Unavailable</body></html>"))
	case FaultDropConnection:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	case FaultInternalError:
		writeErr(w, errorf("21", "Internal error"))
	case FaultForbidden:
		writeErr(w, &apiErr{httpStatus: http.StatusForbidden, code: "403", lines: []string{"Invalid credentials."}})
	case FaultSessionTimeout:
		writeErr(w, errorf("22", "Session timed out"))
	default:
		return false
	}
	return true
}
