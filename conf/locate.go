package conf

import (
	"strings"
)

// KeyLines maps each setting and table of a TOML document to the line
// (1-based) where it is written, keyed by the path's parts joined with
// "\x00". The TOML library does not expose key positions, so this is a
// small line scanner for the subset of TOML that configurations use:
// [table] and [[array]] headers and key = value lines with bare, quoted or
// dotted keys. Values spanning lines (arrays, multi-line strings) are
// skipped over. It never fails: text it does not understand is ignored.
type KeyLines map[string]int

// LocateKeys scans src.
func LocateKeys(src string) KeyLines {
	out := KeyLines{}
	var table []string
	inMulti := "" // the delimiter of an open multi-line string
	depth := 0    // open [ and { of a value spanning lines
	for i, line := range strings.Split(src, "\n") {
		n := i + 1
		if inMulti != "" {
			if j := strings.Index(line, inMulti); j >= 0 {
				line = line[j+3:]
				inMulti = ""
			} else {
				continue
			}
			depth += valueDepth(line, &inMulti)
			continue
		}
		if depth > 0 {
			depth += valueDepth(line, &inMulti)
			if depth < 0 {
				depth = 0
			}
			continue
		}
		s := strings.TrimSpace(line)
		switch {
		case s == "" || s[0] == '#':
			continue
		case strings.HasPrefix(s, "[[") || strings.HasPrefix(s, "["):
			inner := strings.TrimPrefix(s, "[")
			inner = strings.TrimPrefix(inner, "[")
			k, rest, ok := parseKey(inner)
			if !ok || !strings.HasPrefix(strings.TrimSpace(rest), "]") {
				continue
			}
			table = k
			out.set(table, n)
			continue
		}
		k, rest, ok := parseKey(s)
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, "=") {
			continue
		}
		full := append(append([]string{}, table...), k...)
		out.set(full, n)
		depth += valueDepth(rest[1:], &inMulti)
		if depth < 0 {
			depth = 0
		}
	}
	return out
}

func (kl KeyLines) set(key []string, line int) {
	id := strings.Join(key, "\x00")
	if _, ok := kl[id]; !ok {
		kl[id] = line
	}
}

// Line returns the line of key, or of its nearest enclosing table or
// setting that is written in the file, or 0.
func (kl KeyLines) Line(key []string) int {
	for n := len(key); n > 0; n-- {
		if l, ok := kl[strings.Join(key[:n], "\x00")]; ok {
			return l
		}
	}
	return 0
}

// parseKey reads a possibly dotted key at the start of s and returns its
// parts and what follows.
func parseKey(s string) ([]string, string, bool) {
	var parts []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
		switch s[0] {
		case '"', '\'':
			q := s[0]
			end := -1
			for j := 1; j < len(s); j++ {
				if q == '"' && s[j] == '\\' {
					j++
					continue
				}
				if s[j] == q {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, "", false
			}
			part = s[1:end]
			if q == '"' {
				part = strings.ReplaceAll(part, `\"`, `"`)
				part = strings.ReplaceAll(part, `\\`, `\`)
			}
			s = s[end+1:]
		default:
			j := 0
			for j < len(s) && isBare(s[j]) {
				j++
			}
			if j == 0 {
				return nil, "", false
			}
			part, s = s[:j], s[j:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s, true
		}
		s = s[1:]
	}
}

func isBare(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// valueDepth returns how many [ and { a value's text leaves open (outside
// strings and comments), and sets *multi when it opens a multi-line string
// it does not close.
func valueDepth(s string, multi *string) int {
	d := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '#':
			return d
		case strings.HasPrefix(s[i:], `"""`) || strings.HasPrefix(s[i:], `'''`):
			delim := s[i : i+3]
			j := strings.Index(s[i+3:], delim)
			if j < 0 {
				*multi = delim
				return d
			}
			i += 3 + j + 2
		case c == '"' || c == '\'':
			for i++; i < len(s) && s[i] != c; i++ {
				if c == '"' && s[i] == '\\' {
					i++
				}
			}
		case c == '[' || c == '{':
			d++
		case c == ']' || c == '}':
			d--
		}
	}
	return d
}
