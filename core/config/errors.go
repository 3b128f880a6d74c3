package config

import (
	"fmt"
	"sort"
	"strings"
)

// Position is where something was defined.
type Position struct {
	File string
	Line int
}

func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	Position
	// Path is the dotted path of the field, e.g. certificates.www.key.bits.
	Path    string
	Message string
	Hint    string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Position.String())
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(p.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Errors lists every problem found; nothing is contacted while any remain.
type Errors struct {
	Problems []Problem
}

func (e *Errors) Error() string {
	lines := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

func (e *Errors) add(pos Position, path, hint, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Position: pos, Path: path, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// Add appends a problem (for checks made outside this package, such as plugin capabilities).
func (e *Errors) Add(pos Position, path, message, hint string) {
	e.Problems = append(e.Problems, Problem{Position: pos, Path: path, Message: message, Hint: hint})
}

func (e *Errors) sort() {
	sort.SliceStable(e.Problems, func(i, j int) bool {
		a, b := e.Problems[i], e.Problems[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
}

// Err returns e when it holds problems, nil otherwise.
func (e *Errors) Err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	e.sort()
	return e
}

// Warning is something allowed but unwise, such as a password written into the file.
type Warning = Problem

// suggest returns the candidate closest to s, when close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
