package bigipsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// Fault makes matching requests fail before the device acts on them.
type Fault struct {
	// Method to match; any when empty.
	Method string
	// PathPrefix of the URL path to match; any when empty.
	PathPrefix string
	// Status of the answer; 503 when zero.
	Status int
	// Message of the iControl error body; the status text when empty.
	Message string
	// HTML answers a page instead of JSON, as Apache or a restarting GUI does.
	HTML bool
	// EchoRequest repeats the request body in the answer (message and originalRequestBody), as
	// some endpoints do: a client must never pass that on.
	EchoRequest bool
	// Times is how many requests fail; 1 when zero.
	Times int
}

// InjectFault queues a fault; faults are matched in the order they were added.
func (s *Sim) InjectFault(f Fault) {
	if f.Status == 0 {
		f.Status = http.StatusServiceUnavailable
	}
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults drops every pending fault and the latency.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.latency = 0
}

// SetLatency delays every management request by d.
func (s *Sim) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Busy makes the next n requests answer 503 with the "active asynchronous task" message.
func (s *Sim) Busy(n int) {
	s.InjectFault(Fault{Status: http.StatusServiceUnavailable, Times: n,
		Message: "01020060:3: there is an active asynchronous task executing."})
}

// FailSave makes the next n "save sys config" calls fail.
func (s *Sim) FailSave(n int) {
	s.InjectFault(Fault{Method: http.MethodPost, PathPrefix: "/mgmt/tm/sys/config", Status: http.StatusBadRequest, Times: n,
		Message: "01070711:3: Caught runtime exception, Failed to save configuration: /config/bigip.conf: No space left on device."})
}

// FailConfigSync makes the next n config-sync calls fail.
func (s *Sim) FailConfigSync(n int) {
	s.InjectFault(Fault{Method: http.MethodPost, PathPrefix: "/mgmt/tm/cm", Status: http.StatusBadRequest, Times: n,
		Message: "01070712:3: Caught configuration exception (0), Peer device is not reachable for config sync."})
}

// FailTransactionCommit makes the next n transaction commits fail; nothing queued is applied.
func (s *Sim) FailTransactionCommit(n int) {
	s.InjectFault(Fault{Method: http.MethodPatch, PathPrefix: "/mgmt/tm/transaction/", Status: http.StatusBadRequest, Times: n,
		Message: "transaction failed:01070711:3: Caught runtime exception, mcpd validation timed out."})
}

func (s *Sim) injectFault(w http.ResponseWriter, r *http.Request, body []byte) bool {
	s.mu.Lock()
	var f *Fault
	for i, cand := range s.faults {
		if (cand.Method == "" || cand.Method == r.Method) && strings.HasPrefix(r.URL.Path, cand.PathPrefix) {
			f = cand
			cand.Times--
			if cand.Times <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
			break
		}
	}
	s.mu.Unlock()
	if f == nil {
		return false
	}
	msg := f.Message
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	if f.HTML {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, "<html><body><p>"+msg+"</p></body></html>\n")
		return true
	}
	out := map[string]any{"code": f.Status, "message": msg, "errorStack": []string{}, "apiError": 3}
	if f.EchoRequest && len(body) > 0 {
		out["message"] = msg + " Request: " + string(body)
		out["originalRequestBody"] = string(body)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(f.Status)
	_ = json.NewEncoder(w).Encode(out)
	return true
}
