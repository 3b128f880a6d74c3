package main

import (
	"net/url"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/secret"
)

// registerNotificationSecrets masks what a notification setting carries that is a secret: a
// webhook URL (Slack's and Teams' URLs are their credential, and so is their path), header values
// and the SMTP password.
func registerNotificationSecrets(r *secret.Redactor, n config.Notifications) {
	for _, h := range n.Webhooks {
		r.Add(h.URL)
		if u, err := url.Parse(h.URL); err == nil && len(u.Path) > 8 {
			r.Add(u.Path)
		}
		for _, v := range h.Headers {
			r.Add(v)
		}
	}
	if n.Email != nil {
		r.Add(n.Email.Password)
		r.AddBasicAuth(n.Email.Username, n.Email.Password)
	}
}
