package main

import (
	"bufio"
	"io"
	"strings"
	"unicode/utf8"
)

// table is a text table whose columns are aligned as text/tabwriter aligns them (no minimum
// width, two spaces between columns, the last column not padded), written without a copy of
// its text: the cells are the caller's strings, and the output is streamed once the widths are
// known. A fleet's run or plan prints tens of thousands of rows; tabwriter keeps every cell's
// text in its own buffer until the end and costs a formatted line per row on top.
type table struct {
	rows   [][]string
	widths []int
}

// row adds a row; all rows should have the same number of cells.
func (t *table) row(cells ...string) {
	for i, c := range cells[:max(len(cells)-1, 0)] {
		if i == len(t.widths) {
			t.widths = append(t.widths, 0)
		}
		t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
	}
	t.rows = append(t.rows, cells)
}

// write writes the table to w.
func (t *table) write(w io.Writer) error {
	const padding = 2
	bw := bufio.NewWriterSize(w, 64<<10)
	spaces := strings.Repeat(" ", padding+max(0, maxOf(t.widths)))
	for _, r := range t.rows {
		for i, c := range r {
			bw.WriteString(c)
			if i < len(r)-1 {
				bw.WriteString(spaces[:t.widths[i]-utf8.RuneCountInString(c)+padding])
			}
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
