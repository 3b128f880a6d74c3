package main

import (
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
)

// TestTableAlignsAsTabwriter: the streamed table prints what text/tabwriter (minwidth 0, padding
// 2, spaces) prints for the same rows, wide characters, empty cells and a short last column
// included, so run and plan read as before.
func TestTableAlignsAsTabwriter(t *testing.T) {
	rows := [][]string{
		{"CERTIFICATE", "DEVICE", "ACTION", "OUTCOME", "DETAIL"},
		{"www", "web1", "none", "unchanged", "valid for 89 more days"},
		{"bücher-straße.example", "adc-ünïcode-01", "renew", "deployed", ""},
		{"", "x", "", "failed", "inventory of x: unavailable"},
		{"a-much-longer-certificate-name-than-the-header", "d", "enroll", "pending", "order pending"},
	}
	var want strings.Builder
	tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	var tab table
	for _, r := range rows {
		tab.row(r...)
	}
	var got strings.Builder
	if err := tab.write(&got); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("table:\n%s\ntabwriter:\n%s", got.String(), want.String())
	}
}
