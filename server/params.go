package server

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// params holds request parameters parsed the way SessionKeyServer 1.5 did:
// the raw text is split on '&', each part on its first '='; a part without
// '=' is ignored; "a=" gives the empty string; values are URL-decoded with
// '+' as space, names are not decoded at all (the original looked up
// "realm" in the raw names, so "re%61lm=r" is no realm); a repeated name
// keeps its last value.
//
// It is written here rather than taken from net/url because url.ParseQuery
// differs on each of these points (it decodes names, keeps parts without
// '=', keeps every value, and rejects ';'), and because the /valid path
// should not build a map.
//
// Parsing is one pass over the text. A request may carry at most maxParams
// parameters (query and form body together), so the linear lookup in a
// slice costs at most maxParams comparisons per parameter: a client cannot
// make parsing quadratic with thousands of distinct names.
type params struct {
	kv [][2]string
	n  int // parameters seen, repeats included
}

// maxParams bounds the name=value parts of one request. The protocol's
// largest request (/mod_group) has six parameters.
const maxParams = 32

var (
	errBadEscape = errors.New("malformed percent-encoding")
	// errTooMany is answered as "ERR: too many parameters (at most 32)".
	errTooMany = errors.New("too many parameters (at most " + strconv.Itoa(maxParams) + ")")
)

// parse adds the parameters of raw; later ones override earlier ones. It
// returns errTooMany once the request has more than maxParams parameters.
func (p *params) parse(raw string) error {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		if p.n++; p.n > maxParams {
			return errTooMany
		}
		value, err := unescape(value)
		if err != nil {
			return err
		}
		p.set(name, value)
	}
	return nil
}

func (p *params) set(name, value string) {
	for i := range p.kv {
		if p.kv[i][0] == name {
			p.kv[i][1] = value
			return
		}
	}
	p.kv = append(p.kv, [2]string{name, value})
}

// get returns the value of name and whether it was given.
func (p *params) get(name string) (string, bool) {
	for i := range p.kv {
		if p.kv[i][0] == name {
			return p.kv[i][1], true
		}
	}
	return "", false
}

// unescape decodes s without allocating when there is nothing to decode.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	v, err := url.QueryUnescape(s)
	if err != nil {
		return "", errBadEscape
	}
	return v, nil
}
