// Package report renders the fleet's certificates as a self-contained HTML page: an expiry
// timeline (inline SVG, no script, no external resource) and a table, readable from a file.
package report

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/inventory"
)

// Colours of the timeline's bars; the browser test looks for them in a screenshot.
const (
	ColourManaged   = "#2e7d32"
	ColourUnmanaged = "#8d6e63"
	ColourExpiring  = "#c62828"
)

// ExpiringWithin marks certificates that expire this soon.
const ExpiringWithin = 30 * 24 * time.Hour

type bar struct {
	Row              inventory.Row
	Y, X, W          int
	Colour, Label    string
	Status, NotAfter string
	DaysLeft         int
}

type tick struct {
	X     int
	Label string
}

type page struct {
	At                                time.Time
	Width, Height, Left, Right, RowH  int
	Bars                              []bar
	Ticks                             []tick
	NowX                              int
	Errors                            []inventory.DeviceError
	Managed, Unmanaged, Expiring, All int
	Colours                           map[string]string
}

// WriteHTML writes the fleet's report.
func WriteHTML(w io.Writer, fleet inventory.Fleet) error {
	now := fleet.At
	rows := make([]inventory.Row, 0, len(fleet.Rows))
	for _, r := range fleet.Rows {
		if !r.NotAfter.IsZero() {
			rows = append(rows, r)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].NotAfter.Before(rows[j].NotAfter) })
	// The axis runs from 30 days ago (or the oldest start) to the last expiry.
	start, end := now.Add(-30*24*time.Hour), now.Add(90*24*time.Hour)
	for _, r := range rows {
		if r.NotAfter.After(end) {
			end = r.NotAfter
		}
	}
	if max := now.Add(5 * 366 * 24 * time.Hour); end.After(max) {
		end = max // a 20-year CA certificate must not squash the rest
	}
	p := page{At: now, Width: 1100, Left: 320, Right: 20, RowH: 22, Errors: fleet.Errors, All: len(rows),
		Colours: map[string]string{"managed": ColourManaged, "unmanaged": ColourUnmanaged, "expiring": ColourExpiring}}
	span := float64(p.Width - p.Left - p.Right)
	x := func(t time.Time) int {
		if t.Before(start) {
			t = start
		}
		if t.After(end) {
			t = end
		}
		return p.Left + int(span*float64(t.Sub(start))/float64(end.Sub(start)))
	}
	p.NowX = x(now)
	for m := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0); m.Before(end); m = m.AddDate(0, 1, 0) {
		if months := end.Sub(start).Hours() / 24 / 30; months > 14 && m.Month()%3 != 1 {
			continue
		}
		p.Ticks = append(p.Ticks, tick{X: x(m), Label: m.Format("Jan 2006")})
	}
	for i, r := range rows {
		b := bar{Row: r, Y: 40 + i*p.RowH, X: x(r.NotBefore), NotAfter: r.NotAfter.UTC().Format("2006-01-02"),
			DaysLeft: int(r.NotAfter.Sub(now).Hours() / 24)}
		b.W = x(r.NotAfter) - b.X
		if b.W < 2 {
			b.W = 2
		}
		switch {
		case r.NotAfter.Before(now.Add(ExpiringWithin)):
			b.Colour, b.Status = ColourExpiring, "expiring"
			p.Expiring++
		case r.Managed:
			b.Colour, b.Status = ColourManaged, "managed"
		default:
			b.Colour, b.Status = ColourUnmanaged, "unmanaged"
		}
		if r.Managed {
			p.Managed++
		} else {
			p.Unmanaged++
		}
		b.Label = r.Device + " · " + r.Object
		if len(b.Label) > 48 {
			b.Label = b.Label[:47] + "…"
		}
		p.Bars = append(p.Bars, b)
	}
	p.Height = 60 + len(rows)*p.RowH
	return tmpl.Execute(w, p)
}

var tmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"join":  strings.Join,
	"date":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"minus": func(a, b int) int { return a - b },
	"plus":  func(a, b int) int { return a + b },
	"yes": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
	"sprintf": fmt.Sprintf,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>certfleet: certificate expiry across the fleet</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#212121}
h1{font-size:20px}
.legend span{display:inline-block;margin-right:18px}
.legend i{display:inline-block;width:14px;height:10px;margin-right:6px}
svg text{font-size:11px;font-family:system-ui,sans-serif}
table{border-collapse:collapse;margin-top:24px;font-size:12px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
tr.expiring td{background:#ffebee}
.errors{color:#b71c1c}
</style></head>
<body>
<h1>Certificate expiry across the fleet</h1>
<p>{{.All}} certificates on the devices at {{date .At}}: {{.Managed}} managed by certfleet, {{.Unmanaged}} not, {{.Expiring}} expiring within 30 days.</p>
<p class="legend"><span><i style="background:{{index .Colours "managed"}}"></i>managed</span><span><i style="background:{{index .Colours "unmanaged"}}"></i>not managed</span><span><i style="background:{{index .Colours "expiring"}}"></i>expires within 30 days</span></p>
{{if .Errors}}<ul class="errors">{{range .Errors}}<li>{{.Device}}: {{.Error}}</li>{{end}}</ul>{{end}}
<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" role="img" aria-label="expiry timeline">
{{range .Ticks}}<line x1="{{.X}}" x2="{{.X}}" y1="28" y2="{{$.Height}}" stroke="#e0e0e0"/><text x="{{.X}}" y="22" text-anchor="middle">{{.Label}}</text>
{{end}}<line id="today" x1="{{.NowX}}" x2="{{.NowX}}" y1="28" y2="{{.Height}}" stroke="#1565c0" stroke-width="2"/><text x="{{.NowX}}" y="36" fill="#1565c0">today</text>
{{range .Bars}}<g class="cert {{.Status}}" data-device="{{.Row.Device}}" data-object="{{.Row.Object}}" data-managed="{{yes .Row.Managed}}" data-not-after="{{.NotAfter}}">
<title>{{.Row.Device}} {{.Row.Object}}: {{.Row.Subject}}, expires {{.NotAfter}}{{if .Row.Managed}}, certfleet: {{.Row.Certificate}}{{end}}</title>
<text x="{{minus $.Left 8}}" y="{{plus .Y 14}}" text-anchor="end">{{.Label}}</text>
<rect x="{{.X}}" y="{{plus .Y 4}}" width="{{.W}}" height="{{minus $.RowH 8}}" fill="{{.Colour}}"/>
</g>
{{end}}</svg>
<table id="certificates"><thead><tr><th>device</th><th>object</th><th>subject</th><th>SANs</th><th>issuer</th><th>not after</th><th>days left</th><th>key</th><th>bound at</th><th>managed</th></tr></thead><tbody>
{{range .Bars}}<tr class="{{.Status}}"><td>{{.Row.Device}}</td><td>{{.Row.Object}}</td><td>{{.Row.Subject}}</td><td>{{join .Row.SANs ", "}}</td><td>{{.Row.Issuer}}</td><td>{{.NotAfter}}</td><td>{{.DaysLeft}}</td><td>{{.Row.KeyType}}</td><td>{{join .Row.Bindings ", "}}</td><td>{{if .Row.Managed}}{{.Row.Certificate}} ({{.Row.Role}}){{else}}no{{end}}</td></tr>
{{end}}</tbody></table>
</body></html>
`))
