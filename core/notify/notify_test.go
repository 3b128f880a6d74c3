package notify

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk/simtls"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const secretValue = "hunter2-device-password"

func sampleDigest(now time.Time) Digest {
	report := engine.Report{RunID: 7, Results: []state.Result{
		{Certificate: "www", Device: "adc1", Action: "renew", Outcome: state.OutcomeFailed, Step: state.StepSubmitted,
			Error: "submit to sectigo: 401 for password " + secretValue},
		{Certificate: "api", Device: "fw1", Action: "enroll", Outcome: state.OutcomeDeployed},
		{Certificate: "shop", Device: "lb1", Action: "none", Outcome: state.OutcomeUnchanged},
	}}
	five, hundred := 5, 100
	status := []engine.StatusRow{
		{Certificate: "www", Device: "adc1", NotAfter: now.Add(5 * 24 * time.Hour), DaysLeft: &five},
		{Certificate: "api", Device: "fw1", NotAfter: now.Add(365 * 24 * time.Hour)},
		{Certificate: "shop", Device: "lb1", NotAfter: now.Add(100 * 24 * time.Hour), DaysLeft: &hundred},
	}
	return FromRun("host1", report, status, 14*24*time.Hour, now)
}

func TestDigestOfARun(t *testing.T) {
	d := sampleDigest(time.Now())
	if len(d.Failed) != 1 || len(d.Deployed) != 1 || len(d.Expiring) != 1 || d.Expiring[0].Certificate != "www" || d.Deployed[0].NotAfter.IsZero() {
		t.Fatalf("digest: %+v", d)
	}
	if got := d.Title(); got != "certfleet on host1: 1 failed, 1 deployed, 1 expiring without renewal" {
		t.Fatalf("title %q", got)
	}
	if !FromRun("h", engine.Report{Results: []state.Result{{Certificate: "a", Outcome: state.OutcomeUnchanged}}}, nil, time.Hour, time.Now()).Empty() {
		t.Fatal("a quiet run has a digest")
	}
}

// receiver is a real HTTP server that records what it is sent.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	status int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, body)
	status := r.status
	r.mu.Unlock()
	if req.Header.Get("Content-Type") != "application/json" || req.Header.Get("Authorization") != "Bearer hook-token" {
		http.Error(w, "bad request headers", http.StatusBadRequest)
		return
	}
	w.WriteHeader(status)
}

func (r *receiver) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

func TestWebhooksInEveryFormatAndAFailingReceiver(t *testing.T) {
	redactor := secret.NewRedactor()
	redactor.Add(secretValue)
	recv := map[string]*receiver{"json": {status: 200}, "slack": {status: 200}, "teams": {status: 202}, "broken": {status: 500}}
	var hooks []config.Webhook
	for _, name := range []string{"json", "slack", "teams", "broken"} {
		srv := httptest.NewServer(recv[name])
		t.Cleanup(srv.Close)
		format := name
		if name == "broken" {
			format = "json"
		}
		hooks = append(hooks, config.Webhook{Name: name, URL: srv.URL + "/hook", Format: format, Timeout: 5 * time.Second,
			Headers: map[string]string{"Authorization": "Bearer hook-token"}, Events: []string{"failure", "deploy", "expiry"}})
	}
	// A receiver that is not listening at all.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	hooks = append(hooks, config.Webhook{Name: "gone", URL: "http://" + closed + "/secret-path-token", Format: "slack", Timeout: 2 * time.Second, Events: []string{"failure"}})
	// One that only wants deployments.
	deploys := &receiver{status: 200}
	srv := httptest.NewServer(deploys)
	t.Cleanup(srv.Close)
	hooks = append(hooks, config.Webhook{Name: "deploys", URL: srv.URL, Format: "json", Timeout: 5 * time.Second,
		Headers: map[string]string{"Authorization": "Bearer hook-token"}, Events: []string{"deploy"}})

	n, err := New(config.Notifications{Webhooks: hooks}, redactor.Redact)
	if err != nil {
		t.Fatal(err)
	}
	failed := n.Notify(context.Background(), sampleDigest(time.Now()))
	if len(failed) != 2 || failed[0].Channel != "broken" || !strings.Contains(failed[0].Err.Error(), "500 Internal Server Error") ||
		failed[1].Channel != "gone" || !strings.Contains(failed[1].Err.Error(), "connection refused") {
		t.Fatalf("failures: %+v", failed)
	}
	if strings.Contains(failed[1].Err.Error(), "secret-path-token") {
		t.Errorf("the error repeats the webhook URL: %v", failed[1].Err)
	}
	for name, r := range recv {
		bodies := r.received()
		if len(bodies) != 1 {
			t.Fatalf("%s received %d posts; one digest per run", name, len(bodies))
		}
		if strings.Contains(string(bodies[0]), secretValue) || !strings.Contains(string(bodies[0]), "[REDACTED]") && !strings.Contains(string(bodies[0]), "***") {
			t.Errorf("%s: the secret is not masked: %s", name, bodies[0])
		}
	}
	var slack struct{ Text string }
	if err := json.Unmarshal(recv["slack"].received()[0], &slack); err != nil || !strings.HasPrefix(slack.Text, "*certfleet on host1: 1 failed") || !strings.Contains(slack.Text, "• FAILED www on adc1 (renew, at step submitted)") {
		t.Errorf("slack payload: %q (%v)", slack.Text, err)
	}
	var teams struct {
		Type        string
		Attachments []struct {
			ContentType string
			Content     struct {
				Type string
				Body []struct{ Type, Text string }
			}
		}
	}
	if err := json.Unmarshal(recv["teams"].received()[0], &teams); err != nil || teams.Type != "message" || len(teams.Attachments) != 1 ||
		teams.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" || teams.Attachments[0].Content.Type != "AdaptiveCard" ||
		len(teams.Attachments[0].Content.Body) != 4 {
		t.Errorf("teams payload: %+v (%v)", teams, err)
	}
	var plain struct {
		Title  string
		Failed []Item
	}
	if err := json.Unmarshal(recv["json"].received()[0], &plain); err != nil || len(plain.Failed) != 1 || plain.Failed[0].Step != "submitted" {
		t.Errorf("json payload: %+v (%v)", plain, err)
	}
	var onlyDeploys Digest
	if err := json.Unmarshal(deploys.received()[0], &onlyDeploys); err != nil || len(onlyDeploys.Failed)+len(onlyDeploys.Expiring) != 0 || len(onlyDeploys.Deployed) != 1 {
		t.Errorf("events filter: %+v", onlyDeploys)
	}
}

// smtpBackend is a real SMTP server (emersion/go-smtp) that requires STARTTLS and AUTH PLAIN.
type smtpBackend struct {
	mu       sync.Mutex
	messages []string
	rcpts    []string
	authed   []string
}

type smtpSession struct {
	b      *smtpBackend
	authed bool
	rcpts  []string
}

func (b *smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{b: b}, nil }

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "certfleet" || password != "mail-pass" {
			return errors.New("invalid credentials")
		}
		s.authed = true
		s.b.mu.Lock()
		s.b.authed = append(s.b.authed, username)
		s.b.mu.Unlock()
		return nil
	}), nil
}

func (s *smtpSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.messages = append(s.b.messages, string(data))
	s.b.rcpts = append(s.b.rcpts, s.rcpts...)
	s.b.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.rcpts = nil }
func (s *smtpSession) Logout() error { return nil }

func startSMTP(t *testing.T) (*smtpBackend, int, string) {
	t.Helper()
	authority, err := simtls.NewAuthority("smtp test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	b := &smtpBackend{}
	s := smtp.NewServer(b)
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.AllowInsecureAuth = false // AUTH only after STARTTLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return b, ln.Addr().(*net.TCPAddr).Port, authority.CACertPEM()
}

func TestEmailOverSTARTTLSWithAuth(t *testing.T) {
	b, port, caPEM := startSMTP(t)
	redactor := secret.NewRedactor()
	redactor.Add(secretValue, "mail-pass")
	email := &config.Email{Host: "127.0.0.1", Port: port, Security: "starttls", Username: "certfleet", Password: "mail-pass",
		From: "certfleet@example.com", To: []string{"pki@example.com", "oncall@example.com"}, Events: []string{"failure", "expiry"},
		Timeout: 10 * time.Second, TLS: config.TLS{CABundlePEM: caPEM}}
	n, err := New(config.Notifications{Email: email}, redactor.Redact)
	if err != nil {
		t.Fatal(err)
	}
	if failed := n.Notify(context.Background(), sampleDigest(time.Now())); len(failed) != 0 {
		t.Fatalf("email failed: %+v", failed)
	}
	b.mu.Lock()
	msgs, rcpts, authed := b.messages, b.rcpts, b.authed
	b.mu.Unlock()
	if len(msgs) != 1 || len(rcpts) != 2 || len(authed) != 1 {
		t.Fatalf("%d messages to %v (auth %v); want one digest to both", len(msgs), rcpts, authed)
	}
	msg := msgs[0]
	for _, want := range []string{"Subject: certfleet on host1: 1 failed, 1 expiring without renewal", "FAILED www on adc1", "EXPIRING www on adc1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "DEPLOYED") || strings.Contains(msg, secretValue) {
		t.Errorf("the message has a deployment (not asked for) or the secret:\n%s", msg)
	}

	// A wrong password and an untrusted server certificate are reported, with no secret.
	email.Password = "wrong"
	redactor.Add("wrong")
	n, _ = New(config.Notifications{Email: email}, redactor.Redact)
	failed := n.Notify(context.Background(), sampleDigest(time.Now()))
	if len(failed) != 1 || !strings.Contains(failed[0].Err.Error(), "AUTH failed") {
		t.Fatalf("bad password: %+v", failed)
	}
	email.Password, email.TLS = "mail-pass", config.TLS{}
	n, _ = New(config.Notifications{Email: email}, redactor.Redact)
	failed = n.Notify(context.Background(), sampleDigest(time.Now()))
	if len(failed) != 1 || !strings.Contains(failed[0].Err.Error(), "certificate") {
		t.Fatalf("untrusted server: %+v", failed)
	}
}
