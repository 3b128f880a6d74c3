package config

import (
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// LogFile is logging.file: a size-rotated log file with its own level.
type LogFile struct {
	Path       string
	Level      string // debug when empty
	Format     string // the terminal's format when empty
	MaxSizeMB  int
	MaxBackups int
	MaxAgeDays int
	Compress   bool
	// Daily starts a new file each day as well.
	Daily bool
}

// Daemon configures `certfleet daemon`.
type Daemon struct {
	// Schedule is a cron expression (five fields, or @daily, @weekly, @every 6h ...).
	Schedule string
	// Location is the time zone the schedule is read in (time_zone; the host's when unset).
	Location *time.Location
	// Jitter delays each run by a random share of this much, so many hosts do not hit a CA at once.
	Jitter time.Duration
	// Listen is the local address of /metrics and /healthz ("" when off).
	Listen string
	// StopTimeout is how long SIGTERM waits for the step in flight before cancelling it.
	StopTimeout time.Duration
	// RunAtStart runs once when the daemon starts, before the first scheduled time.
	RunAtStart bool
	Position   Position
}

// DefaultListen is where the daemon serves /metrics and /healthz unless configured.
const DefaultListen = "127.0.0.1:9720"

// Notification events.
const (
	EventFailure = "failure" // a certificate failed in a run
	EventDeploy  = "deploy"  // a certificate was deployed
	EventExpiry  = "expiry"  // a certificate is close to expiry and was not renewed
)

var allEvents = []string{EventFailure, EventDeploy, EventExpiry}

// Notifications configures the digest sent after a run.
type Notifications struct {
	// ExpiryWarning: a deployed certificate with less than this left and no successful renewal
	// in the run is reported (14 days when unset).
	ExpiryWarning time.Duration
	Webhooks      []Webhook
	Email         *Email
}

// Webhook is one HTTP receiver of the digest.
type Webhook struct {
	Name    string
	URL     string
	Format  string // json | slack | teams
	Headers map[string]string
	Events  []string
	Timeout time.Duration
	TLS     TLS
}

// Email sends the digest by SMTP.
type Email struct {
	Host     string
	Port     int
	Security string // starttls (required) | tls (implicit, port 465) | none
	Username string
	Password string
	From     string
	To       []string
	Events   []string
	Timeout  time.Duration
	TLS      TLS
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a daemon schedule: five cron fields or a descriptor (@daily, @every 6h).
func ParseSchedule(expr string) (cron.Schedule, error) { return cronParser.Parse(expr) }

func (w *walker) logFile(n *yaml.Node, path string) LogFile {
	var f LogFile
	w.object(n, path, fields{
		"path": func(n *yaml.Node, p string) { f.Path = w.relPath(w.str(n, p)) },
		"level": func(n *yaml.Node, p string) {
			f.Level = w.str(n, p)
			if !validLevel(f.Level) {
				w.errs.add(w.pos(n), p, "use trace, debug, info, warn or error", "%q is not a log level", f.Level)
			}
		},
		"format": func(n *yaml.Node, p string) {
			f.Format = w.str(n, p)
			if f.Format != "text" && f.Format != "json" {
				w.errs.add(w.pos(n), p, "use text or json", "%q is not a log format", f.Format)
			}
		},
		"max_size_mb": func(n *yaml.Node, p string) { f.MaxSizeMB = w.positive(n, p) },
		"max_backups": func(n *yaml.Node, p string) { f.MaxBackups = w.positive(n, p) },
		"max_age": func(n *yaml.Node, p string) {
			f.MaxAgeDays = int((w.duration(n, p) + 24*time.Hour - 1) / (24 * time.Hour))
		},
		"compress": func(n *yaml.Node, p string) { f.Compress = w.boolean(n, p) },
		"daily":    func(n *yaml.Node, p string) { f.Daily = w.boolean(n, p) },
	})
	if f.Path == "" && n.Kind == yaml.MappingNode {
		w.errs.add(w.pos(n), join(path, "path"), "e.g. path: /var/log/certfleet/certfleet.log", "is missing")
	}
	return f
}

func validLevel(l string) bool {
	switch l {
	case "trace", "debug", "info", "warn", "error":
		return true
	}
	return false
}

func (w *walker) daemon(n *yaml.Node) Daemon {
	d := Daemon{Listen: DefaultListen, Position: w.pos(n)}
	w.object(n, "daemon", fields{
		"schedule": func(n *yaml.Node, p string) {
			d.Schedule = w.str(n, p)
			if _, err := ParseSchedule(d.Schedule); err != nil {
				w.errs.add(w.pos(n), p, `five cron fields (minute hour day-of-month month day-of-week), e.g. "17 3 * * *", or @daily, @weekly, "@every 6h"`,
					"%q is not a schedule: %v", d.Schedule, err)
			}
		},
		"time_zone": func(n *yaml.Node, p string) {
			name := w.str(n, p)
			loc, err := time.LoadLocation(name)
			if err != nil || name == "" {
				w.errs.add(w.pos(n), p, `an IANA time zone name, e.g. "Europe/London" or "UTC"`, "%q is not a known time zone", name)
				return
			}
			d.Location = loc
		},
		"jitter": func(n *yaml.Node, p string) { d.Jitter = w.duration(n, p) },
		"listen": func(n *yaml.Node, p string) {
			d.Listen = w.str(n, p)
			if d.Listen == "" {
				return
			}
			if _, port, err := net.SplitHostPort(d.Listen); err != nil || port == "" {
				w.errs.add(w.pos(n), p, `host:port, e.g. "127.0.0.1:9720", or "" to serve nothing`, "%q is not an address", d.Listen)
			}
		},
		"stop_timeout": func(n *yaml.Node, p string) { d.StopTimeout = w.duration(n, p) },
		"run_at_start": func(n *yaml.Node, p string) { d.RunAtStart = w.boolean(n, p) },
	})
	if d.Schedule == "" && n.Kind == yaml.MappingNode {
		w.errs.add(w.pos(n), "daemon.schedule", `e.g. schedule: "17 3 * * *" (every day at 03:17)`, "is missing")
	}
	if d.Location == nil {
		d.Location = time.Local
	}
	if d.StopTimeout == 0 {
		d.StopTimeout = DefaultStopTimeout
	}
	return d
}

// DefaultStopTimeout is daemon.stop_timeout when the configuration does not set it.
const DefaultStopTimeout = 2 * time.Minute

// StopTimeout is how long a stop signal waits for the step in flight, for `run` as for the
// daemon: daemon.stop_timeout, or its default when there is no daemon section.
func (c *Config) StopTimeout() time.Duration {
	if c.Daemon == nil {
		return DefaultStopTimeout
	}
	return c.Daemon.StopTimeout
}

func (w *walker) events(n *yaml.Node, p string) []string {
	out := w.stringList(n, p)
	for _, e := range out {
		known := false
		for _, a := range allEvents {
			known = known || e == a
		}
		if !known {
			w.errs.add(w.pos(n), p, "use failure, deploy and/or expiry", "%q is not a notification event", e)
		}
	}
	return out
}

func (w *walker) notifications(n *yaml.Node) Notifications {
	var ns Notifications
	w.object(n, "notifications", fields{
		"expiry_warning": func(n *yaml.Node, p string) { ns.ExpiryWarning = w.duration(n, p) },
		"webhooks": func(n *yaml.Node, p string) {
			if n.Kind != yaml.SequenceNode {
				w.errs.add(w.pos(n), p, "write a list: - {url: ..., format: slack}", "must be a list, not %s", kindName(n))
				return
			}
			for i, item := range n.Content {
				ns.Webhooks = append(ns.Webhooks, w.webhook(item, p+"["+strconv.Itoa(i)+"]"))
			}
		},
		"email": func(n *yaml.Node, p string) { e := w.email(n, p); ns.Email = &e },
	})
	if ns.ExpiryWarning == 0 {
		ns.ExpiryWarning = 14 * 24 * time.Hour
	}
	return ns
}

func (w *walker) webhook(n *yaml.Node, path string) Webhook {
	h := Webhook{Format: "json", Events: allEvents, Timeout: 10 * time.Second}
	w.object(n, path, fields{
		"name": func(n *yaml.Node, p string) { h.Name = w.str(n, p) },
		"url": func(n *yaml.Node, p string) {
			h.URL = w.str(n, p)
			if !webhookURLAccepted(h.URL) {
				w.errs.add(w.pos(n), p, "an http(s):// URL, or a secret reference such as ${env:SLACK_WEBHOOK_URL}", "%q is not a URL", h.URL)
			}
		},
		"format": func(n *yaml.Node, p string) {
			h.Format = w.str(n, p)
			if h.Format != "json" && h.Format != "slack" && h.Format != "teams" {
				w.errs.add(w.pos(n), p, "use json, slack or teams", "%q is not a webhook format", h.Format)
			}
		},
		"headers": func(n *yaml.Node, p string) {
			h.Headers = map[string]string{}
			for k, v := range w.freeMap(n, p) {
				s, ok := v.(string)
				if !ok {
					w.errs.add(w.pos(n), p+"."+k, "quote the value", "must be a string")
					continue
				}
				h.Headers[k] = s
			}
		},
		"events":  func(n *yaml.Node, p string) { h.Events = w.events(n, p) },
		"timeout": func(n *yaml.Node, p string) { h.Timeout = w.duration(n, p) },
		"tls":     func(n *yaml.Node, p string) { h.TLS = w.tls(n, p) },
	})
	if h.URL == "" && n.Kind == yaml.MappingNode {
		w.errs.add(w.pos(n), join(path, "url"), "the receiver's URL, e.g. ${env:SLACK_WEBHOOK_URL}", "is missing")
	}
	if h.Name == "" {
		h.Name = h.Format + " webhook"
	}
	return h
}

// webhookURLAccepted says whether a webhook url passes the check: an http(s) URL, or text holding
// a secret reference (checked once resolved).
func webhookURLAccepted(s string) bool {
	if strings.Contains(s, "${") {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http")
}

func (w *walker) email(n *yaml.Node, path string) Email {
	e := Email{Security: "starttls", Events: allEvents, Timeout: 30 * time.Second}
	w.object(n, path, fields{
		"host": func(n *yaml.Node, p string) { e.Host = w.str(n, p) },
		"port": func(n *yaml.Node, p string) { e.Port = w.positive(n, p) },
		"security": func(n *yaml.Node, p string) {
			e.Security = w.str(n, p)
			if e.Security != "starttls" && e.Security != "tls" && e.Security != "none" {
				w.errs.add(w.pos(n), p, "starttls (port 587, required), tls (port 465) or none (a local relay only)", "%q is not a mail security mode", e.Security)
			}
		},
		"username": func(n *yaml.Node, p string) { e.Username = w.str(n, p) },
		"password": func(n *yaml.Node, p string) { e.Password = w.str(n, p) },
		"from": func(n *yaml.Node, p string) {
			e.From = w.str(n, p)
			if _, err := mail.ParseAddress(e.From); err != nil {
				w.errs.add(w.pos(n), p, "", "%q is not an e-mail address", e.From)
			}
		},
		"to": func(n *yaml.Node, p string) {
			e.To = w.stringList(n, p)
			for _, a := range e.To {
				if _, err := mail.ParseAddress(a); err != nil {
					w.errs.add(w.pos(n), p, "", "%q is not an e-mail address", a)
				}
			}
		},
		"events":  func(n *yaml.Node, p string) { e.Events = w.events(n, p) },
		"timeout": func(n *yaml.Node, p string) { e.Timeout = w.duration(n, p) },
		"tls":     func(n *yaml.Node, p string) { e.TLS = w.tls(n, p) },
	})
	if n.Kind == yaml.MappingNode {
		for field, missing := range map[string]bool{"host": e.Host == "", "from": e.From == "", "to": len(e.To) == 0} {
			if missing {
				w.errs.add(w.pos(n), join(path, field), "email needs host, from and to", "is missing")
			}
		}
		if (e.Username == "") != (e.Password == "") {
			w.errs.add(w.pos(n), path, "give both username and password, or neither", "SMTP authentication needs both")
		}
	}
	if e.Port == 0 {
		e.Port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[e.Security]
	}
	return e
}
