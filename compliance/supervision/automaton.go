package supervision

import (
	"slices"
)

// automaton is an Aho–Corasick automaton over folded characters (runes), finding every
// occurrence of every pattern, overlapping ones included, in one pass over the text.
//
// It is our own, small, rather than a library: the libraries at hand (github.com/coregx/ahocorasick
// and others) work on bytes and report byte offsets, while matching here works on folded runes
// that each carry their original span and their gap and word flags, and every hit needs checks of
// its own (word boundaries, gaps) before it counts. Over runes the alphabet is large (thousands of
// Han characters), so characters are first mapped to dense classes; the root has a dense
// transition table (most steps after a mismatch start there) and other states sorted edge lists.
type automaton struct {
	classBMP  []int32        // rune → class for runes below 0x10000 (0: in no pattern)
	classRest map[rune]int32 // the rest
	root      []int32        // class → state from the root (0: stay at the root)
	first     []int32        // state → its first edge in label/next
	count     []int32        // state → its number of edges
	label     []int32        // edges' classes, sorted within a state
	next      []int32        // edges' target states
	fail      []int32        // state → failure state
	out       []int32        // state → pattern ending here, or -1
	dict      []int32        // state → nearest state on the failure chain with a pattern, or -1
	depth     []int32        // state → pattern length in runes when out ≥ 0
}

// buildAutomaton compiles the patterns (folded runes, none empty); pattern i is reported as i.
func buildAutomaton(patterns [][]rune) *automaton {
	a := &automaton{classRest: map[rune]int32{}}
	classes := int32(0)
	maxBMP := rune(-1)
	for _, p := range patterns {
		for _, r := range p {
			if r < 0x10000 && r > maxBMP {
				maxBMP = r
			}
		}
	}
	a.classBMP = make([]int32, maxBMP+1)
	classOf := func(r rune) int32 {
		if r < 0x10000 {
			if a.classBMP[r] == 0 {
				classes++
				a.classBMP[r] = classes
			}
			return a.classBMP[r]
		}
		c, ok := a.classRest[r]
		if !ok {
			classes++
			c = classes
			a.classRest[r] = c
		}
		return c
	}

	// The trie, with edges in one map while building.
	type key struct{ state, class int32 }
	edges := map[key]int32{}
	out := []int32{-1}
	depth := []int32{0}
	for i, p := range patterns {
		s := int32(0)
		for _, r := range p {
			k := key{s, classOf(r)}
			n, ok := edges[k]
			if !ok {
				n = int32(len(out)) // #nosec G115 -- Compile bounds the characters of all patterns (maxLiteralRunes)
				edges[k] = n
				out = append(out, -1)
				depth = append(depth, depth[s]+1)
			}
			s = n
		}
		if out[s] < 0 {
			out[s] = int32(i) // #nosec G115 -- as above
		}
	}
	states := len(out)
	a.out, a.depth = out, depth

	// Flatten the edges: sorted by state, then class.
	type edge struct{ state, class, next int32 }
	all := make([]edge, 0, len(edges))
	for k, n := range edges {
		all = append(all, edge{k.state, k.class, n})
	}
	slices.SortFunc(all, func(x, y edge) int {
		if x.state != y.state {
			return int(x.state - y.state)
		}
		return int(x.class - y.class)
	})
	a.first, a.count = make([]int32, states), make([]int32, states)
	a.label, a.next = make([]int32, len(all)), make([]int32, len(all))
	a.root = make([]int32, classes+1)
	for i, e := range all {
		if a.count[e.state] == 0 {
			a.first[e.state] = int32(i)
		}
		a.count[e.state]++
		a.label[i], a.next[i] = e.class, e.next
		if e.state == 0 {
			a.root[e.class] = e.next
		}
	}

	// Failure and dictionary links, breadth first.
	a.fail, a.dict = make([]int32, states), make([]int32, states)
	a.dict[0] = -1
	queue := make([]int32, 0, states)
	for i := a.first[0]; i < a.first[0]+a.count[0]; i++ {
		queue = append(queue, a.next[i])
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := a.fail[s]
		if a.out[f] >= 0 {
			a.dict[s] = f
		} else {
			a.dict[s] = a.dict[f]
		}
		for i := a.first[s]; i < a.first[s]+a.count[s]; i++ {
			c, n := a.label[i], a.next[i]
			// The child's failure: the longest proper suffix that is a state.
			g := f
			for {
				if t := a.step(g, c); t >= 0 {
					if t != n {
						a.fail[n] = t
					}
					break
				}
				g = a.fail[g]
			}
			queue = append(queue, n)
		}
	}
	return a
}

// class returns r's class (0: in no pattern).
func (a *automaton) class(r rune) int32 {
	if r < 0x10000 {
		if int(r) < len(a.classBMP) {
			return a.classBMP[r]
		}
		return 0
	}
	return a.classRest[r]
}

// step follows the edge labelled c out of state s: the next state, or -1 when there is none (the
// root always has one: itself).
func (a *automaton) step(s, c int32) int32 {
	if s == 0 {
		return a.root[c]
	}
	lo, hi := a.first[s], a.first[s]+a.count[s]
	for lo < hi {
		m := lo + (hi-lo)/2
		switch l := a.label[m]; {
		case l == c:
			return a.next[m]
		case l < c:
			lo = m + 1
		default:
			hi = m
		}
	}
	return -1
}

// scan calls hit(pattern, first, last) for every occurrence in chars, first and last being
// indexes of its first and last characters.
func (a *automaton) scan(chars []fchar, hit func(pattern int32, first, last int)) {
	s := int32(0)
	for i := range chars {
		c := a.class(chars[i].r)
		if c == 0 {
			s = 0
			continue
		}
		for {
			if t := a.step(s, c); t >= 0 {
				s = t
				break
			}
			s = a.fail[s]
		}
		o := s
		if a.out[o] < 0 {
			o = a.dict[o]
		}
		for ; o > 0; o = a.dict[o] {
			hit(a.out[o], i-int(a.depth[o])+1, i)
		}
	}
}
