package panosclient

import (
	"fmt"
	"net/http"
	"strings"
)

// Response is a parsed <response> envelope.
type Response struct {
	// Status is the status attribute: "success", "error" (or "failed" on some calls).
	Status string
	// Code is the code attribute, "" when absent.
	Code string
	// Result is the <result> element, nil when absent.
	Result *Element
	// Messages are the human-readable lines, wherever the device put them.
	Messages []string
	// Root is the whole <response> element.
	Root *Element
}

// Failed applies the rule the PAN-OS clients converge on (pango's errorCheck.Failed): a response
// failed when its status is "error" or "failed", and also when it says "success" but carries a
// code other than none, 0, 19 or 20 (config get of an absent object answers success with code 7).
func (r *Response) Failed() bool {
	switch strings.ToLower(strings.TrimSpace(r.Status)) {
	case "error", "failed":
		return true
	}
	switch strings.TrimSpace(r.Code) {
	case "", "0", "19", "20":
		return false
	}
	return true
}

// ParseResponse parses an XML API answer.
func ParseResponse(body []byte) (*Response, error) {
	root, err := ParseElement(body)
	if err != nil {
		return nil, err
	}
	if root.Name != "response" {
		return nil, fmt.Errorf("answer is <%s>, not a <response> envelope", root.Name)
	}
	r := &Response{Status: root.Attr("status"), Code: root.Attr("code"), Result: root.Child("result"), Root: root}
	r.Messages = messagesOf(root)
	return r, nil
}

// messagesOf looks for the messages where pan-python looks, in its order: msg/line (maybe
// nested), result/msg/line, result/msg, msg, result/job/details/line. The first place that
// holds text wins.
func messagesOf(root *Element) []string {
	if lines := root.Child("msg").Lines(); len(lines) > 0 {
		return lines
	}
	if lines := root.Path("result", "msg").Lines(); len(lines) > 0 {
		return lines
	}
	if s := root.Value("result", "msg"); s != "" {
		return []string{s}
	}
	if s := root.Value("msg"); s != "" {
		return []string{s}
	}
	if lines := root.Path("result", "job", "details").Lines(); len(lines) > 0 {
		return lines
	}
	return nil
}

// APIError is an error answer of the XML API.
type APIError struct {
	HTTPStatus int
	Status     string
	Code       string
	Messages   []string
}

// codeNames are the meanings pango and the PAN-OS docs give the error codes.
var codeNames = map[string]string{
	"1": "unknown command", "2": "internal error", "3": "internal error", "4": "internal error",
	"5": "internal error", "6": "bad xpath", "7": "object not present", "8": "object not unique",
	"10": "reference count not zero", "11": "internal error", "12": "invalid object",
	"14": "operation not possible", "15": "operation denied", "16": "unauthorized",
	"17": "invalid command", "18": "malformed command", "21": "internal error",
	"22": "session timed out", "400": "bad request", "403": "forbidden",
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" && e.HTTPStatus != 0 && e.HTTPStatus != http.StatusOK {
		code = fmt.Sprint(e.HTTPStatus)
	}
	var b strings.Builder
	b.WriteString("PAN-OS XML API error")
	if code != "" {
		fmt.Fprintf(&b, " %s", code)
		if name, ok := codeNames[code]; ok {
			fmt.Fprintf(&b, " (%s)", name)
		}
	}
	if msg := e.Message(); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

// Message joins the device's message lines.
func (e *APIError) Message() string { return strings.Join(e.Messages, "; ") }

// VendorCode is the code to report as the device's own: the code attribute, else the HTTP status.
func (e *APIError) VendorCode() string {
	if e.Code != "" {
		return e.Code
	}
	if e.HTTPStatus != 0 {
		return fmt.Sprint(e.HTTPStatus)
	}
	return e.Status
}

// NotFound reports an absent object: code 7, or the "No such node" of action=show.
func (e *APIError) NotFound() bool {
	if e.Code == "7" {
		return true
	}
	for _, m := range e.Messages {
		if strings.Contains(strings.ToLower(m), "no such node") {
			return true
		}
	}
	return false
}

// Forbidden reports a rejected key or credentials (403; keys expire or are revoked by a later keygen).
func (e *APIError) Forbidden() bool { return e.Code == "403" || e.HTTPStatus == http.StatusForbidden }

// SessionExpired reports code 22.
func (e *APIError) SessionExpired() bool { return e.Code == "22" }

func apiErrorOf(httpStatus int, r *Response) *APIError {
	return &APIError{HTTPStatus: httpStatus, Status: r.Status, Code: r.Code, Messages: r.Messages}
}

// HTTPError is a non-XML failure: a proxy, a restarting management server, a wrong URL.
type HTTPError struct {
	StatusCode int
	// Snippet is the start of the body, for the log.
	Snippet string
}

func (e *HTTPError) Error() string {
	if e.Snippet == "" {
		return fmt.Sprintf("HTTP %d from the XML API", e.StatusCode)
	}
	return fmt.Sprintf("HTTP %d from the XML API: %s", e.StatusCode, e.Snippet)
}
