package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/certfleet/certfleet/core/config"
	"github.com/wneessen/go-mail"
)

// Channel is one destination of the digest.
type Channel interface {
	Name() string
	Events() []string
	Send(ctx context.Context, d Digest) error
}

// Notifier sends a run's digest to every channel, once.
type Notifier struct {
	Channels []Channel
	// Redact masks secrets in every text before it is sent.
	Redact func(string) string
}

// New builds the channels the configuration asks for.
func New(cfg config.Notifications, redact func(string) string) (*Notifier, error) {
	n := &Notifier{Redact: redact}
	if n.Redact == nil {
		n.Redact = func(s string) string { return s }
	}
	for _, h := range cfg.Webhooks {
		w, err := NewWebhook(h, n.Redact)
		if err != nil {
			return nil, err
		}
		n.Channels = append(n.Channels, w)
	}
	if cfg.Email != nil {
		e, err := NewEmail(*cfg.Email)
		if err != nil {
			return nil, err
		}
		n.Channels = append(n.Channels, e)
	}
	return n, nil
}

// Failure is a channel that could not be reached.
type Failure struct {
	Channel string
	Err     error
}

// Notify sends d (redacted, and filtered by each channel's events) to every channel that has
// something to say; it returns the channels that failed. Channels are tried one after the other,
// each within its own timeout.
func (n *Notifier) Notify(ctx context.Context, d Digest) []Failure {
	if n == nil {
		return nil
	}
	d = d.redacted(n.Redact)
	var failed []Failure
	for _, c := range n.Channels {
		part := d.only(c.Events())
		if part.Empty() {
			continue
		}
		if err := c.Send(ctx, part); err != nil {
			failed = append(failed, Failure{Channel: c.Name(), Err: errors.New(n.Redact(err.Error()))})
		}
	}
	return failed
}

func tlsConfig(t config.TLS, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // only when the user turns it off for this receiver
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CABundlePEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CABundlePEM)) {
			return nil, errors.New("ca_bundle holds no certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Webhook posts the digest as JSON.
type Webhook struct {
	cfg    config.Webhook
	client *http.Client
	redact func(string) string
}

// NewWebhook returns the channel of a webhook receiver.
func NewWebhook(cfg config.Webhook, redact func(string) string) (*Webhook, error) {
	tc, err := tlsConfig(cfg.TLS, "")
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", cfg.Name, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &Webhook{cfg: cfg, redact: redact, client: &http.Client{Transport: tr, Timeout: cfg.Timeout,
		// A receiver's redirect could carry the digest elsewhere; receivers do not redirect.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

func (w *Webhook) Name() string     { return w.cfg.Name }
func (w *Webhook) Events() []string { return w.cfg.Events }

// Send posts the digest in the receiver's format.
func (w *Webhook) Send(ctx context.Context, d Digest) error {
	body, err := Payload(w.cfg.Format, d)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		// The URL may be a secret (Slack's is): never repeat it.
		return fmt.Errorf("webhook %s: invalid URL", w.cfg.Name)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "certfleet")
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap() // drop the URL that *url.Error repeats
		}
		return fmt.Errorf("webhook %s: %w", w.cfg.Name, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: the receiver answered %s: %s", w.cfg.Name, resp.Status, bytes.TrimSpace(answer))
	}
	return nil
}

// Payload renders the digest for a webhook format: json (the digest itself), slack (an incoming
// webhook message: text in Slack's mrkdwn) or teams (a message carrying an Adaptive Card, the
// form Teams incoming webhooks and Workflows accept).
//
// Sources: Slack, "Sending messages using incoming webhooks" (api.slack.com/messaging/webhooks:
// a JSON body whose "text" is the message, mrkdwn by default); Microsoft, "Create an Incoming
// Webhook" / "Send Adaptive Cards using an Incoming Webhook" (MicrosoftDocs/msteams-docs,
// webhooks-and-connectors/how-to/add-incoming-webhook.md: {"type": "message", "attachments":
// [{"contentType": "application/vnd.microsoft.card.adaptive", "content": {AdaptiveCard}}]}, the
// body the Workflows "post to a channel when a webhook request is received" template also takes).
func Payload(format string, d Digest) ([]byte, error) {
	switch format {
	case "json", "":
		return json.Marshal(struct {
			Title string `json:"title"`
			Digest
		}{d.Title(), d})
	case "slack":
		text := "*" + d.Title() + "*"
		for _, l := range d.Lines() {
			text += "\n• " + l
		}
		return json.Marshal(map[string]string{"text": text})
	case "teams":
		body := []map[string]any{{"type": "TextBlock", "text": d.Title(), "weight": "Bolder", "size": "Medium", "wrap": true}}
		for _, l := range d.Lines() {
			body = append(body, map[string]any{"type": "TextBlock", "text": l, "wrap": true})
		}
		return json.Marshal(map[string]any{
			"type": "message",
			"attachments": []map[string]any{{
				"contentType": "application/vnd.microsoft.card.adaptive",
				"content": map[string]any{
					"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
					"type":    "AdaptiveCard", "version": "1.4", "body": body,
				},
			}},
		})
	}
	return nil, fmt.Errorf("webhook format %q: use json, slack or teams", format)
}

// Email sends the digest by SMTP.
type Email struct {
	cfg config.Email
	tls *tls.Config
}

// NewEmail returns the e-mail channel.
func NewEmail(cfg config.Email) (*Email, error) {
	tc, err := tlsConfig(cfg.TLS, cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	return &Email{cfg: cfg, tls: tc}, nil
}

func (e *Email) Name() string     { return "email to " + fmt.Sprint(e.cfg.To) }
func (e *Email) Events() []string { return e.cfg.Events }

// Send delivers the digest to every recipient in one message.
func (e *Email) Send(ctx context.Context, d Digest) error {
	m := mail.NewMsg()
	if err := m.From(e.cfg.From); err != nil {
		return fmt.Errorf("email: from: %w", err)
	}
	if err := m.To(e.cfg.To...); err != nil {
		return fmt.Errorf("email: to: %w", err)
	}
	m.Subject(d.Title())
	m.SetDate()
	m.SetBodyString(mail.TypeTextPlain, d.Text())
	opts := []mail.Option{mail.WithPort(e.cfg.Port), mail.WithTimeout(e.cfg.Timeout), mail.WithTLSConfig(e.tls)}
	switch e.cfg.Security {
	case "tls":
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if e.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(e.cfg.Username), mail.WithPassword(e.cfg.Password))
	}
	client, err := mail.NewClient(e.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("email via %s:%d: %w", e.cfg.Host, e.cfg.Port, err)
	}
	return nil
}

// Timeout bounds a whole notification round, whatever the channels' own timeouts.
const Timeout = 2 * time.Minute
