package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/inventory"
	"golang.org/x/net/html"
)

// TestWriteHTML parses the page with an HTML5 parser (what a browser does first): one bar per
// certificate with its status, the today marker, nothing loaded from elsewhere, text escaped.
func TestWriteHTML(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	fleet := inventory.Fleet{At: now, Rows: []inventory.Row{
		{Device: "adc1", Object: "www", NotBefore: now.Add(-100 * 24 * time.Hour), NotAfter: now.Add(200 * 24 * time.Hour), Managed: true, Certificate: "www", Role: "adopted"},
		{Device: "adc1", Object: "<script>alert(1)</script>", NotBefore: now.Add(-300 * 24 * time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)},
		{Device: "fw1", Object: "legacy", NotBefore: now.Add(-300 * 24 * time.Hour), NotAfter: now.Add(100 * 24 * time.Hour)},
		{Device: "fw1", Object: "root", NotBefore: now.Add(-3000 * 24 * time.Hour), NotAfter: now.Add(7000 * 24 * time.Hour), IsCA: true},
	}, Errors: []inventory.DeviceError{{Device: "lb1", Error: "inventory of lb1: connection refused"}}}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, fleet); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>") {
		t.Fatal("an object name reached the page unescaped")
	}
	doc, err := html.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	var today bool
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
			}
			if n.Data == "g" && strings.HasPrefix(attrs["class"], "cert ") {
				status[attrs["data-object"]] = strings.TrimPrefix(attrs["class"], "cert ")
			}
			if attrs["id"] == "today" {
				today = true
			}
			for _, k := range []string{"src", "href"} {
				if attrs[k] != "" {
					t.Errorf("<%s %s=%q>: the page must load nothing", n.Data, k, attrs[k])
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	want := map[string]string{"www": "managed", "<script>alert(1)</script>": "expiring", "legacy": "unmanaged", "root": "unmanaged"}
	if len(status) != len(want) || !today {
		t.Fatalf("bars %v, today marker %v", status, today)
	}
	for o, s := range want {
		if status[o] != s {
			t.Errorf("bar %q: %q, want %q", o, status[o], s)
		}
	}
	if !strings.Contains(buf.String(), "connection refused") && !bytes.Contains([]byte(renderText(doc)), []byte("connection refused")) {
		t.Error("the device error is not on the page")
	}
}

func renderText(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
