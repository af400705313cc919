package server

import (
	"errors"
	"net/url"
	"strings"
)

// params holds request parameters parsed the way SessionKeyServer 1.5 did:
// the raw text is split on '&', each part on its first '='; a part without
// '=' is ignored; "a=" gives the empty string; names and values are
// URL-decoded with '+' as space; a repeated name keeps its last value.
//
// It is written here rather than taken from net/url because url.ParseQuery
// differs on each of these points (it keeps parts without '=', keeps every
// value, and rejects ';'), and because the /valid path should not build a map.
// A request has a handful of parameters, so a slice beats a map.
type params struct {
	kv [][2]string
}

var errBadEscape = errors.New("malformed percent-encoding")

// parse adds the parameters of raw; later ones override earlier ones.
func (p *params) parse(raw string) error {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		var err error
		if name, err = unescape(name); err != nil {
			return err
		}
		if value, err = unescape(value); err != nil {
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
