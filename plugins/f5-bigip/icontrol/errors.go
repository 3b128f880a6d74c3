package icontrol

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// Message IDs the plugin acts on. A BIG-IP message starts with "<id>:<severity>: ".
const (
	// IDNotFound: "01020036:3: The requested <kind> (/P/x) was not found."
	IDNotFound = "01020036"
	// IDAlreadyExists: "01020066:3: The requested <kind> (/P/x) already exists in partition P."
	IDAlreadyExists = "01020066"
	// IDBadPassphrase: "01070313:3: Error reading key PEM file ...: bad password read"
	IDBadPassphrase = "01070313"
)

// Error is an iControl REST error response: the HTTP status and the body's
// {code, message, errorStack}. Message has every secret the client knows replaced, because
// some endpoints echo the request (and so a password or passphrase) back in their errors.
type Error struct {
	Method string
	Path   string
	// Status is the HTTP status.
	Status int
	// Code is the body's code (usually the HTTP status again); 0 when the body was not JSON.
	Code       int
	Message    string
	ErrorStack []string
}

var messageID = regexp.MustCompile(`(?:^|[\s:])([0-9a-f]{8}):[0-9]+:`)

// ID is the BIG-IP message id (e.g. "01020036"), or "" when the message has none.
func (e *Error) ID() string {
	if m := messageID.FindStringSubmatch(e.Message); m != nil {
		return m[1]
	}
	return ""
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, msg)
}

// IsNotFound reports a missing object: HTTP 404, or the 01020036 message (which a transaction
// commit or a reference to a missing object reports with status 400).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusNotFound || e.ID() == IDNotFound)
}

// IsAlreadyExists reports a name clash: HTTP 409 or the 01020066 message. Some versions are said
// to answer 400 for an existing sys/crypto/key [UNCONFIRMED], so the message counts too.
func IsAlreadyExists(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusConflict || e.ID() == IDAlreadyExists ||
		strings.Contains(e.Message, "already exists"))
}

// IsBadPassphrase reports a wrong or missing passphrase for a password-protected key.
func IsBadPassphrase(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.ID() == IDBadPassphrase || strings.Contains(e.Message, "bad password read"))
}

// IsUnexpectedProperty reports a body field the device does not know ("Found unexpected json
// pair ..."), the way BIG-IP rejects a property name it does not have.
func IsUnexpectedProperty(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusBadRequest && strings.Contains(e.Message, "unexpected json pair")
}

// IsAuthFailure reports rejected credentials (HTTP 401 that is not about a token or a role).
func IsAuthFailure(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusUnauthorized && !isTokenProblem(e) && !isAuthorization(e)
}

// IsForbidden reports a logged-in user who may not do this: 403, or 401 "Authorization failed:
// user=..." (how iControl REST answers a role that lacks the permission [UNCONFIRMED]).
func IsForbidden(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusForbidden || (e.Status == http.StatusUnauthorized && isAuthorization(e)))
}

// IsTokenLimit reports a user who holds the maximum number of tokens (400, "maximum active login tokens").
func IsTokenLimit(err error) bool {
	var e *Error
	return errors.As(err, &e) && strings.Contains(e.Message, "maximum active login tokens")
}

// IsRetryable reports a busy device: 503, or a message saying an asynchronous task or a
// restart of the configuration utility is in progress.
func IsRetryable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusBadGateway ||
		strings.Contains(e.Message, "active asynchronous task") || strings.Contains(e.Message, "Configuration Utility restarting")
}

func isTokenProblem(e *Error) bool {
	return e.Status == http.StatusUnauthorized && strings.Contains(e.Message, "X-F5-Auth-Token")
}

func isAuthorization(e *Error) bool {
	return strings.Contains(e.Message, "Authorization failed: user=") || strings.Contains(e.Message, "not authorized")
}
