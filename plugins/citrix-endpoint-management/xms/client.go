// Package xms is a small client of the public REST API of Citrix Endpoint Management and XenMobile
// Server ("Public API for REST Services"), limited to what a certificate plugin needs: login (password
// or Citrix Cloud bearer token), logout, the certificate list, export, keystore import and delete.
//
// Every fact used here is in ../../../../shared/reference/citrix-endpoint-management.md with its
// sources (PDF-2021, PDF-10.4, WEB-10.3 and the public clients); the section is named beside each call.
package xms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// BasePath is where the public API lives on the server (reference §0).
const BasePath = "/xenmobile/api/v1"

// maxBody bounds every reply read; the largest real reply is the certificate list.
const maxBody = 16 << 20

// Error is a reply the server gave: an HTTP status and, where the body is the JSON envelope, its
// status code and message (reference §0, "Envelope").
type Error struct {
	Op         string
	HTTPStatus int
	Status     int
	Message    string
}

func (e *Error) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s: HTTP %d, status %d: %s", e.Op, e.HTTPStatus, e.Status, e.Message)
	}
	return fmt.Sprintf("%s: HTTP %d", e.Op, e.HTTPStatus)
}

// TransportError is a request that got no HTTP answer.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// Client talks to one server. It is not safe for concurrent login/logout; a plugin makes one per call.
type Client struct {
	base  string
	http  *http.Client
	token string
	user  string
}

// New returns a client for baseURL ("https://host:4443") using hc.
func New(baseURL string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/") + BasePath, http: hc}
}

// LoggedIn reports whether the client holds a session token.
func (c *Client) LoggedIn() bool { return c.token != "" }

// envelope is the part of every reply the client checks (reference §0).
type envelope struct {
	// Status is kept raw: Go matches JSON keys without regard to case, and the logout reply's
	// "Status" is a sentence, not a code (reference §1, "Logout").
	Status  json.RawMessage `json:"status"`
	Message string          `json:"message"`
}

// code returns the envelope's numeric status, and false when it has none.
func (e envelope) code() (int, bool) {
	if len(e.Status) == 0 {
		return 0, false
	}
	var n Int
	if err := json.Unmarshal(e.Status, &n); err != nil {
		return 0, false
	}
	return int(n), true
}

// Login opens a session with a password (reference §1, "Password login").
func (c *Client) Login(ctx context.Context, user, password string) error {
	c.user = user
	return c.login(ctx, "/authentication/login", map[string]string{"login": user, "password": password})
}

// LoginCloud opens a session with a Citrix Cloud bearer token (reference §1, "Cloud login").
func (c *Client) LoginCloud(ctx context.Context, bearer string) error {
	return c.login(ctx, "/authentication/login/cloud", map[string]string{"bearerToken": bearer})
}

func (c *Client) login(ctx context.Context, path string, body any) error {
	var reply struct {
		envelope
		// Every client reads auth_token; WEB-10.3 spells it auth-token (reference §1).
		Token    string `json:"auth_token"`
		TokenAlt string `json:"auth-token"`
	}
	if err := c.do(ctx, "login", http.MethodPost, path, body, &reply); err != nil {
		return err
	}
	c.token = reply.Token
	if c.token == "" {
		c.token = reply.TokenAlt
	}
	if c.token == "" {
		return &Error{Op: "login", HTTPStatus: http.StatusOK, Message: "the server answered without an auth_token"}
	}
	return nil
}

// Logout ends the session (reference §1, "Logout"); a client without a session does nothing.
func (c *Client) Logout(ctx context.Context) error {
	if c.token == "" {
		return nil
	}
	err := c.do(ctx, "logout", http.MethodPost, "/authentication/logout", map[string]string{"login": c.user}, nil)
	c.token = ""
	return err
}

// Environment reports whether the server is a Citrix Endpoint Management (cloud) tenant: GET
// /environment is "only available to Endpoint Management cloud administrators" (PDF-2021 §3.24);
// what an on-premises server answers is unconfirmed, so any 4xx reads as "not cloud".
func (c *Client) Environment(ctx context.Context) (cloud bool, err error) {
	var reply struct {
		IsMultitenant       *bool  `json:"isMultitenant"`
		CustomerEnvironment string `json:"customerEnvironment"`
	}
	err = c.do(ctx, "environment", http.MethodGet, "/environment", nil, &reply)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.HTTPStatus >= 400 && apiErr.HTTPStatus < 500 && apiErr.HTTPStatus != http.StatusUnauthorized {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Name is a subject or issuer as the list gives it (reference §2, "List").
type Name struct {
	CertString string `json:"certString"`
	CommonName string `json:"commonName"`
}

// Certificate is one entry of the certificate table. The list has no PEM, SANs, key type or role.
type Certificate struct {
	ID          Int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	IsActive    Bool   `json:"isActive"`
	PrivateKey  Bool   `json:"privateKey"`
	ValidFrom   string `json:"validFrom"`
	ValidTo     string `json:"validTo"`
	CertDetails struct {
		SerialNum   string `json:"serialNum"`
		IssuerName  Name   `json:"issuerName"`
		SubjectName Name   `json:"subjectName"`
	} `json:"certDetails"`
}

// List returns the certificate table (reference §2, "List": GET /certificates, array key
// "certificate", no paging).
func (c *Client) List(ctx context.Context) ([]Certificate, error) {
	var reply struct {
		envelope
		Certificate []Certificate `json:"certificate"`
	}
	if err := c.do(ctx, "list certificates", http.MethodGet, "/certificates", nil, &reply); err != nil {
		return nil, err
	}
	return reply.Certificate, nil
}

// Export returns the PEM text of entry id; with withKey, the private key comes first, encrypted
// under password (reference §2, "Export"). The older documents say only that the "certificate
// string" is shown, so a reply that is not JSON is taken as the PEM itself.
func (c *Client) Export(ctx context.Context, id int64, password string, withKey bool) (string, error) {
	req := map[string]any{"id": strconv.FormatInt(id, 10), "exportPrivateKey": withKey}
	if password != "" {
		req["password"] = password
	}
	data, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	raw, err := c.raw(ctx, "export certificate", http.MethodPost, "/certificates/export", body{contentType: "application/json", data: data})
	if err != nil {
		return "", err
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var reply struct {
			envelope
			Certificate string `json:"certificate"`
		}
		if err := json.Unmarshal(trimmed, &reply); err != nil {
			return "", fmt.Errorf("export certificate: decode reply: %w", err)
		}
		if err := checkEnvelope("export certificate", reply.envelope); err != nil {
			return "", err
		}
		return reply.Certificate, nil
	}
	return string(trimmed), nil
}

// Role is what an imported entry is used as: the path segment and the useAs value (reference §2,
// "Import keystore": useAs none for server, saml, listener).
type Role string

const (
	RoleServer   Role = "server"
	RoleSAML     Role = "saml"
	RoleListener Role = "listener"
)

func (r Role) useAs() string {
	if r == RoleServer {
		return "none"
	}
	return string(r)
}

// ImportKeystore uploads a PKCS#12 keystore as role (reference §2, "Import keystore"): multipart,
// a certImportData text part holding JSON and one uploadFile part. No import returns the new id.
func (c *Client) ImportKeystore(ctx context.Context, role Role, p12 []byte, password, description string) error {
	meta, err := json.Marshal(map[string]string{
		"password": password, "alias": "", "useAs": role.useAs(), "uploadType": "keystore",
		"keystoreType": "PKCS12", "description": description,
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.WriteField("certImportData", string(meta)); err != nil {
		return err
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="uploadFile"; filename="certfleet.p12"`)
	h.Set("Content-Type", "application/octet-stream")
	part, err := w.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := part.Write(p12); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	var reply envelope
	return c.doRaw(ctx, "import keystore as "+string(role), http.MethodPost, "/certificates/import/keystore/"+string(role),
		body{contentType: w.FormDataContentType(), data: buf.Bytes()}, &reply)
}

// Delete removes entries (reference §2, "Delete"). PDF-2021 puts it at /certificates, the 10.x
// documents at /publicapi/certificates: the second is tried when the first is not there.
func (c *Client) Delete(ctx context.Context, ids ...int64) error {
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.FormatInt(id, 10)
	}
	req := map[string][]string{"certificateIds": list}
	var reply envelope
	err := c.do(ctx, "delete certificates", http.MethodDelete, "/certificates", req, &reply)
	var apiErr *Error
	if errors.As(err, &apiErr) && (apiErr.HTTPStatus == http.StatusNotFound || apiErr.HTTPStatus == http.StatusMethodNotAllowed) {
		return c.do(ctx, "delete certificates", http.MethodDelete, "/publicapi/certificates", req, &reply)
	}
	return err
}

type body struct {
	contentType string
	data        []byte
}

func (c *Client) do(ctx context.Context, op, method, path string, in any, out any) error {
	var b body
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", op, err)
		}
		b = body{contentType: "application/json", data: data}
	}
	return c.doRaw(ctx, op, method, path, b, out)
}

func (c *Client) doRaw(ctx context.Context, op, method, path string, in body, out any) error {
	raw, err := c.raw(ctx, op, method, path, in)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s: decode reply: %w", op, err)
	}
	if err := checkEnvelope(op, env); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", op, err)
	}
	return nil
}

// checkEnvelope fails a reply whose status is set and not 0 (reference §0: 0/"Success" is success).
func checkEnvelope(op string, env envelope) error {
	if code, ok := env.code(); ok && code != 0 {
		return &Error{Op: op, HTTPStatus: http.StatusOK, Status: code, Message: env.Message}
	}
	return nil
}

func (c *Client) raw(ctx context.Context, op, method, path string, in body) ([]byte, error) {
	var reader io.Reader
	if in.data != nil {
		reader = bytes.NewReader(in.data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if in.contentType != "" {
		req.Header.Set("Content-Type", in.contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		// The documents write Auth_token or auth_token; header names are case-insensitive (reference §1).
		req.Header.Set("auth_token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &TransportError{Err: fmt.Errorf("%s: %w", op, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &TransportError{Err: fmt.Errorf("%s: read reply: %w", op, err)}
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Op: op, HTTPStatus: resp.StatusCode}
		var env envelope
		// A 403 may carry a non-JSON body (enoola's client, reference §0): keep only the code then.
		if json.Unmarshal(raw, &env) == nil {
			e.Message = env.Message
			e.Status, _ = env.code()
		}
		return nil, e
	}
	return raw, nil
}
