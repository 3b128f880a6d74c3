package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const opsBase = `version: v1
issuers:
  ca: {type: acme, acme: {directory_url: "https://ca.example/dir", eab: {key_id: k, hmac_key: "${env:H}"}}}
devices:
  d1: {plugin: pemdir, address: /tmp/d1}
certificates:
  www: {device: d1, issuer: ca, sans: {dns: [www.example.com]}, bindings: [{kind: live-link, name: www}]}
`

func loadOps(t *testing.T, extra string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(opsBase+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Load(path)
	return cfg, err
}

func TestOperationsSections(t *testing.T) {
	cfg, err := loadOps(t, `logging:
  level: warn
  file: {path: logs/certfleet.log, level: debug, max_size_mb: 1, max_backups: 10, max_age: 30d, compress: true, daily: true}
daemon:
  schedule: "17 3 * * *"
  time_zone: Europe/London
  jitter: 30m
notifications:
  expiry_warning: 21d
  webhooks:
    - {url: "${env:SLACK_URL}", format: slack, events: [failure, expiry]}
    - {url: "https://hooks.example.com/certfleet", headers: {Authorization: "${env:HOOK_TOKEN}"}}
  email: {host: smtp.example.com, username: certfleet, password: "${env:SMTP_PASSWORD}", from: certfleet@example.com, to: [pki@example.com]}
`)
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Logging.File
	if !strings.HasSuffix(f.Path, "/logs/certfleet.log") || !filepath.IsAbs(f.Path) || f.Level != "debug" || f.MaxSizeMB != 1 || f.MaxAgeDays != 30 || !f.Compress || !f.Daily {
		t.Errorf("logging.file: %+v", f)
	}
	d := cfg.Daemon
	if d == nil || d.Schedule != "17 3 * * *" || d.Location.String() != "Europe/London" || d.Jitter != 30*time.Minute || d.Listen != DefaultListen || d.StopTimeout != 2*time.Minute {
		t.Errorf("daemon: %+v", d)
	}
	n := cfg.Notifications
	if n.ExpiryWarning != 21*24*time.Hour || len(n.Webhooks) != 2 || n.Webhooks[0].Format != "slack" || len(n.Webhooks[0].Events) != 2 ||
		n.Webhooks[1].Format != "json" || len(n.Webhooks[1].Events) != 3 || n.Email == nil || n.Email.Port != 587 || n.Email.Security != "starttls" {
		t.Errorf("notifications: %+v %+v", n, n.Email)
	}
}

func TestOperationsSectionErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"daemon: {schedule: \"61 * * * *\"}\n", `c.yaml:8: daemon.schedule: "61 * * * *" is not a schedule`},
		{"daemon: {jitter: 5m}\n", "daemon.schedule: is missing"},
		{"daemon: {schedule: \"@daily\", time_zone: Mars/Olympus}\n", `daemon.time_zone: "Mars/Olympus" is not a known time zone`},
		{"daemon: {schedule: \"@daily\", listen: localhost}\n", `daemon.listen: "localhost" is not an address`},
		{"logging: {file: {level: debug}}\n", "logging.file.path: is missing"},
		{"logging: {file: {path: x.log, level: chatty}}\n", `logging.file.level: "chatty" is not a log level`},
		{"notifications: {webhooks: [{url: \"ftp://x\"}]}\n", `notifications.webhooks[0].url: "ftp://x" is not a URL`},
		{"notifications: {webhooks: [{url: \"https://x.example\", format: discord}]}\n", `"discord" is not a webhook format`},
		{"notifications: {webhooks: [{url: \"https://x.example\", events: [deploy, panic]}]}\n", `"panic" is not a notification event`},
		{"notifications: {email: {host: smtp.example.com, from: a@example.com, to: [b@example.com], username: u}}\n", "SMTP authentication needs both"},
		{"notifications: {email: {host: smtp.example.com, to: [b@example.com]}}\n", "notifications.email.from: is missing"},
		{"notifications: {email: {host: h, from: a@example.com, to: [b@example.com], security: ssl}}\n", `"ssl" is not a mail security mode`},
	} {
		_, err := loadOps(t, tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s→ %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
}

// TestNoPlainTextWarningForSopsEncryptedValues: a configuration file sops-encrypted in part
// (encrypted_regex '^password$') is read decrypted; its password was not in plain text on disk,
// and the unencrypted api_key was.
func TestNoPlainTextWarningForSopsEncryptedValues(t *testing.T) {
	onDisk := strings.Replace(opsBase, "  d1: {plugin: pemdir, address: /tmp/d1}\n",
		"  d1:\n    plugin: pemdir\n    address: /tmp/d1\n    credentials:\n      password: ENC[AES256_GCM,data:3q2+7w==,iv:AAAA,tag:BBBB,type:str]\n      api_key: plain-key\n", 1)
	decrypted := strings.Replace(onDisk, "ENC[AES256_GCM,data:3q2+7w==,iv:AAAA,tag:BBBB,type:str]", "decrypted-password", 1)
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(onDisk+"sops:\n  version: 3.13.3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, warnings, err := Load(path, WithFileReader(func(string) ([]byte, error) { return []byte(decrypted), nil }))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || warnings[0].Path != "api_key" {
		t.Fatalf("warnings %v; want one, for api_key only", warnings)
	}
}

// runtime.revocation_check_interval can be turned off ("never", or a negative duration as the
// README said before "never" existed); zero and words are refused with the field named.
func TestRevocationCheckIntervalNever(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		err   string
	}{
		{"", 24 * time.Hour, ""},
		{"12h", 12 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"never", -1, ""},
		{"-1h", -1, ""},
		{"0s", 0, `runtime.revocation_check_interval: "0s" is not a duration (hint: write e.g. "30d", "12h" or "90s", or "never")`},
		{"sometimes", 0, `runtime.revocation_check_interval: "sometimes" is not a duration`},
	} {
		extra := ""
		if tc.value != "" {
			extra = "runtime: {revocation_check_interval: \"" + tc.value + "\"}\n"
		}
		cfg, err := loadOps(t, extra)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.value, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.value, err)
			continue
		}
		if got := cfg.Runtime.RevocationCheckInterval; got != tc.want {
			t.Errorf("%q: interval %v, want %v", tc.value, got, tc.want)
		}
	}
}
