package secret

// matcher is an Aho-Corasick automaton over bytes that finds every occurrence of a set of
// patterns in one pass, whatever their number. It is immutable once built, so the Redactor can
// swap it atomically and read it without locks.
//
// States are numbered breadth-first. The shallow ones (depth ≤ 2, where text that is not a secret
// spends nearly all its time) have complete transition rows over byte classes (bytes that occur in
// no pattern share one class), so one table lookup per byte suffices there; deeper states keep
// their few children in sorted edge lists and fall back along failure links. Memory stays linear
// in the total pattern length.
type matcher struct {
	class    [256]uint16 // byte → class; 0 = in no pattern
	nClasses int
	nDense   int32   // states [0, nDense) have dense rows
	dense    []int32 // dense[s*nClasses+class] = next state

	edgeStart []int32 // edges of state s: edgeByte/edgeNext[edgeStart[s]:edgeStart[s+1]]
	edgeByte  []byte
	edgeNext  []int32
	fail      []int32
	depth     []int32 // length of the string that leads to the state
	// out is the length of the longest pattern that ends at the state (a suffix of its string),
	// or 0. Shorter patterns that also end there lie inside it, so masking needs only the longest.
	out []int32
}

// span is a half-open byte range [start, end) to mask.
type span struct{ start, end int }

// maxDenseEntries bounds the dense table (4 bytes an entry).
const maxDenseEntries = 1 << 18

func newMatcher(patterns []string) *matcher {
	// 1. A trie, children as linked lists: cheap to build for thousands of patterns.
	type node struct {
		firstChild, nextSibling int32
		label                   byte
		out                     int32
	}
	nodes := []node{{firstChild: -1, nextSibling: -1}}
	child := func(s int32, b byte) int32 {
		for c := nodes[s].firstChild; c >= 0; c = nodes[c].nextSibling {
			if nodes[c].label == b {
				return c
			}
		}
		return -1
	}
	m := &matcher{}
	for _, p := range patterns {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			if m.class[p[i]] == 0 {
				m.nClasses++
				m.class[p[i]] = uint16(m.nClasses)
			}
			next := child(s, p[i])
			if next < 0 {
				next = int32(len(nodes))
				nodes = append(nodes, node{firstChild: -1, nextSibling: nodes[s].firstChild, label: p[i]})
				nodes[s].firstChild = next
			}
			s = next
		}
		if int32(len(p)) > nodes[s].out {
			nodes[s].out = int32(len(p))
		}
	}
	m.nClasses++ // class 0

	// 2. Renumber breadth-first, with sorted edge lists.
	n := len(nodes)
	order := make([]int32, 0, n) // new id → trie node
	newID := make([]int32, n)
	order = append(order, 0)
	m.edgeStart = make([]int32, n+1)
	m.depth = make([]int32, n)
	m.out = make([]int32, n)
	m.fail = make([]int32, n)
	var kids []int32
	for id := 0; id < len(order); id++ {
		t := order[id]
		m.out[id] = nodes[t].out
		kids = kids[:0]
		for c := nodes[t].firstChild; c >= 0; c = nodes[c].nextSibling {
			kids = append(kids, c)
		}
		// Insertion sort by label: few children per node.
		for i := 1; i < len(kids); i++ {
			for j := i; j > 0 && nodes[kids[j]].label < nodes[kids[j-1]].label; j-- {
				kids[j], kids[j-1] = kids[j-1], kids[j]
			}
		}
		m.edgeStart[id] = int32(len(m.edgeByte))
		for _, c := range kids {
			newID[c] = int32(len(order))
			m.depth[len(order)] = m.depth[id] + 1
			order = append(order, c)
			m.edgeByte = append(m.edgeByte, nodes[c].label)
			m.edgeNext = append(m.edgeNext, newID[c])
		}
	}
	m.edgeStart[n] = int32(len(m.edgeByte))

	// 3. Dense rows for the shallow states.
	for s := int32(0); s < int32(n) && m.depth[s] <= 2; s++ {
		m.nDense = s + 1
	}
	if int(m.nDense)*m.nClasses > maxDenseEntries {
		m.nDense = 1
		for s := int32(1); s < int32(n) && m.depth[s] <= 1; s++ {
			m.nDense = s + 1
		}
	}
	m.dense = make([]int32, int(m.nDense)*m.nClasses)

	// 4. Failure links and dense rows, breadth-first: a state's failure link is the longest proper
	// suffix of its string that is also a prefix of some pattern, always shallower, so its row
	// and links are ready when the state is reached.
	for s := int32(0); s < int32(n); s++ {
		for e := m.edgeStart[s]; e < m.edgeStart[s+1]; e++ {
			b, t := m.edgeByte[e], m.edgeNext[e]
			if s != 0 {
				m.fail[t] = m.step(m.fail[s], b)
				if o := m.out[m.fail[t]]; o > m.out[t] {
					m.out[t] = o
				}
			}
		}
		if s < m.nDense {
			row := m.dense[int(s)*m.nClasses : int(s+1)*m.nClasses]
			if s != 0 {
				copy(row, m.dense[int(m.fail[s])*m.nClasses:int(m.fail[s]+1)*m.nClasses])
			}
			for e := m.edgeStart[s]; e < m.edgeStart[s+1]; e++ {
				row[m.class[m.edgeByte[e]]] = m.edgeNext[e]
			}
		}
	}
	return m
}

// step is the automaton's transition function.
func (m *matcher) step(s int32, b byte) int32 {
	for s >= m.nDense {
		for e := m.edgeStart[s]; e < m.edgeStart[s+1]; e++ {
			if m.edgeByte[e] == b {
				return m.edgeNext[e]
			}
		}
		s = m.fail[s]
	}
	return m.dense[int(s)*m.nClasses+int(m.class[b])]
}

// scan returns the ranges of text to mask, sorted and disjoint (overlapping occurrences are merged
// so that no byte of any secret survives), and the automaton state at the end of text.
// spans is appended to and returned, so callers can reuse a buffer.
func (m *matcher) scan(text []byte, spans []span) ([]span, int32) {
	s := int32(0)
	dense, class, out, nDense, nc := m.dense, &m.class, m.out, m.nDense, m.nClasses
	for i, c := range text {
		if s < nDense {
			s = dense[int(s)*nc+int(class[c])]
		} else {
			s = m.step(s, c)
		}
		if l := out[s]; l > 0 {
			spans = addSpan(spans, i+1-int(l), i+1)
		}
	}
	return spans, s
}

// scanString is scan for a string, without copying it.
func (m *matcher) scanString(text string, spans []span) []span {
	s := int32(0)
	dense, class, out, nDense, nc := m.dense, &m.class, m.out, m.nDense, m.nClasses
	for i := 0; i < len(text); i++ {
		c := text[i]
		if s < nDense {
			s = dense[int(s)*nc+int(class[c])]
		} else {
			s = m.step(s, c)
		}
		if l := out[s]; l > 0 {
			spans = addSpan(spans, i+1-int(l), i+1)
		}
	}
	return spans
}

// addSpan adds [start, end) to spans, merging it with the spans it overlaps. Occurrences arrive
// in order of their end, so only the tail of spans can overlap.
func addSpan(spans []span, start, end int) []span {
	for len(spans) > 0 && spans[len(spans)-1].end > start {
		if last := spans[len(spans)-1]; last.start < start {
			start = last.start
		}
		spans = spans[:len(spans)-1]
	}
	return append(spans, span{start, end})
}
