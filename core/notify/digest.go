// Package notify tells people what a run did: one digest per run (failures, deployments, and
// certificates close to expiry that were not renewed), sent to webhooks (plain JSON, Slack or
// Microsoft Teams) and by e-mail. Every text is redacted before it leaves the process, and a
// receiver that fails never fails the run: the caller logs it.
package notify

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/state"
)

// Item is one certificate in a digest.
type Item struct {
	Certificate string    `json:"certificate"`
	Device      string    `json:"device"`
	Action      string    `json:"action,omitempty"`
	Step        string    `json:"step,omitempty"`
	Error       string    `json:"error,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	DaysLeft    *int      `json:"days_left,omitempty"`
}

// Digest is what one run has to tell.
type Digest struct {
	Host     string    `json:"host"`
	RunID    int64     `json:"run_id,omitempty"`
	Finished time.Time `json:"finished"`
	Failed   []Item    `json:"failed,omitempty"`
	Deployed []Item    `json:"deployed,omitempty"`
	Expiring []Item    `json:"expiring,omitempty"`
}

// Empty reports whether there is nothing to send.
func (d Digest) Empty() bool { return len(d.Failed)+len(d.Deployed)+len(d.Expiring) == 0 }

// FromRun builds the digest of a run: its failures and deployments, and every deployed
// certificate with less than expiryWarning left that this run did not renew.
func FromRun(host string, report engine.Report, status []engine.StatusRow, expiryWarning time.Duration, now time.Time) Digest {
	d := Digest{Host: host, RunID: report.RunID, Finished: now.UTC()}
	renewed := map[string]bool{}
	for _, r := range report.Results {
		switch r.Outcome {
		case state.OutcomeFailed:
			d.Failed = append(d.Failed, Item{Certificate: r.Certificate, Device: r.Device, Action: r.Action, Step: string(r.Step), Error: r.Error})
		case state.OutcomeDeployed:
			renewed[r.Certificate] = true
			d.Deployed = append(d.Deployed, Item{Certificate: r.Certificate, Device: r.Device, Action: r.Action})
		}
	}
	for _, s := range status {
		if s.NotAfter.IsZero() || renewed[s.Certificate] {
			if renewed[s.Certificate] {
				for i := range d.Deployed {
					if d.Deployed[i].Certificate == s.Certificate {
						d.Deployed[i].NotAfter = s.NotAfter.UTC()
					}
				}
			}
			continue
		}
		if s.NotAfter.Sub(now) < expiryWarning {
			d.Expiring = append(d.Expiring, Item{Certificate: s.Certificate, Device: s.Device, NotAfter: s.NotAfter.UTC(), DaysLeft: s.DaysLeft, Error: s.LastError})
		}
	}
	for _, items := range [][]Item{d.Failed, d.Deployed, d.Expiring} {
		sort.Slice(items, func(i, j int) bool { return items[i].Certificate < items[j].Certificate })
	}
	return d
}

// only keeps the parts of d that the events ask for.
func (d Digest) only(events []string) Digest {
	want := map[string]bool{}
	for _, e := range events {
		want[e] = true
	}
	if !want[config.EventFailure] {
		d.Failed = nil
	}
	if !want[config.EventDeploy] {
		d.Deployed = nil
	}
	if !want[config.EventExpiry] {
		d.Expiring = nil
	}
	return d
}

// redacted returns d with every free text passed through redact.
func (d Digest) redacted(redact func(string) string) Digest {
	fix := func(items []Item) []Item {
		out := make([]Item, len(items))
		for i, it := range items {
			it.Error = redact(it.Error)
			out[i] = it
		}
		return out
	}
	d.Failed, d.Deployed, d.Expiring = fix(d.Failed), fix(d.Deployed), fix(d.Expiring)
	return d
}

// Title is the digest in one line.
func (d Digest) Title() string {
	var parts []string
	if n := len(d.Failed); n > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", n))
	}
	if n := len(d.Deployed); n > 0 {
		parts = append(parts, fmt.Sprintf("%d deployed", n))
	}
	if n := len(d.Expiring); n > 0 {
		parts = append(parts, fmt.Sprintf("%d expiring without renewal", n))
	}
	return fmt.Sprintf("certfleet on %s: %s", d.Host, strings.Join(parts, ", "))
}

// Lines are the digest's details, one per certificate, grouped.
func (d Digest) Lines() []string {
	var out []string
	for _, it := range d.Failed {
		line := fmt.Sprintf("FAILED %s on %s", it.Certificate, it.Device)
		if it.Step != "" {
			line += fmt.Sprintf(" (%s, at step %s)", it.Action, it.Step)
		}
		out = append(out, line+": "+it.Error)
	}
	for _, it := range d.Deployed {
		line := fmt.Sprintf("DEPLOYED %s on %s (%s)", it.Certificate, it.Device, it.Action)
		if !it.NotAfter.IsZero() {
			line += ", valid until " + it.NotAfter.Format("2006-01-02")
		}
		out = append(out, line)
	}
	for _, it := range d.Expiring {
		line := fmt.Sprintf("EXPIRING %s on %s expires %s", it.Certificate, it.Device, it.NotAfter.Format("2006-01-02 15:04 MST"))
		if it.DaysLeft != nil {
			line += fmt.Sprintf(" (%d days left)", *it.DaysLeft)
		}
		if it.Error != "" {
			line += "; last error: " + it.Error
		}
		out = append(out, line)
	}
	return out
}

// Text is the digest as plain text (the e-mail body).
func (d Digest) Text() string {
	var b strings.Builder
	b.WriteString(d.Title() + "\n\n")
	for _, l := range d.Lines() {
		b.WriteString(l + "\n")
	}
	if d.RunID != 0 {
		fmt.Fprintf(&b, "\nRun %d finished at %s. `certfleet history` shows every run; the log file has the details.\n", d.RunID, d.Finished.Format(time.RFC3339))
	}
	return b.String()
}
