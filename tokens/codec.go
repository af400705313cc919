package tokens

import (
	"encoding/binary"
	"errors"
	"time"
)

// The record encoding is hand-written rather than JSON or gob because it is
// decoded on every /valid: this format costs two string allocations and no
// reflection. Layout: version byte, flags byte, issued and expires as uvarint
// Unix nanoseconds (0 = unset), then length-prefixed user, identity and roles.
const recordVersion = 1

const flagSuperseded = 1

var errCorrupt = errors.New("corrupt record")

func encodeRecord(r Record) []byte {
	n := 2 + 2*binary.MaxVarintLen64 + 3*binary.MaxVarintLen32 + len(r.User) + len(r.Identity)
	for _, role := range r.Roles {
		n += binary.MaxVarintLen32 + len(role)
	}
	b := make([]byte, 0, n)
	var flags byte
	if r.Superseded {
		flags |= flagSuperseded
	}
	b = append(b, recordVersion, flags)
	b = binary.AppendUvarint(b, unixNano(r.Issued))
	b = binary.AppendUvarint(b, unixNano(r.Expires))
	b = appendString(b, r.User)
	b = appendString(b, r.Identity)
	b = binary.AppendUvarint(b, uint64(len(r.Roles)))
	for _, role := range r.Roles {
		b = appendString(b, role)
	}
	return b
}

func decodeRecord(b []byte) (Record, error) {
	var r Record
	if len(b) < 2 || b[0] != recordVersion {
		return r, errCorrupt
	}
	r.Superseded = b[1]&flagSuperseded != 0
	b = b[2:]
	var ok bool
	var v uint64
	if v, b, ok = uvarint(b); !ok {
		return r, errCorrupt
	}
	r.Issued = fromUnixNano(v)
	if v, b, ok = uvarint(b); !ok {
		return r, errCorrupt
	}
	r.Expires = fromUnixNano(v)
	if r.User, b, ok = readString(b); !ok {
		return r, errCorrupt
	}
	if r.Identity, b, ok = readString(b); !ok {
		return r, errCorrupt
	}
	if v, b, ok = uvarint(b); !ok || v > uint64(len(b)) {
		return r, errCorrupt
	}
	if v > 0 {
		r.Roles = make([]string, v)
		for i := range r.Roles {
			if r.Roles[i], b, ok = readString(b); !ok {
				return r, errCorrupt
			}
		}
	}
	if len(b) != 0 {
		return r, errCorrupt
	}
	return r, nil
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func fromUnixNano(v uint64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(v))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

func readString(b []byte) (string, []byte, bool) {
	n, b, ok := uvarint(b)
	if !ok || n > uint64(len(b)) {
		return "", b, false
	}
	return string(b[:n]), b[n:], true
}

// Keys: one prefix byte, then length-prefixed parts, so that no realm, user
// or group name can collide with another's key whatever bytes it holds.
const (
	pfxToken   = 't' // realm, hash -> record
	pfxCurrent = 'u' // realm, user -> hash of the current token
	pfxKey     = 'K' // identity -> per-identity key (global, as the original)
	// pfxRealmKey is the layout before keys became global: realm, identity
	// -> key. OpenBadger moves these to pfxKey; one that differs from its
	// identity's global key stays here, unserved, so that no key is lost
	// (see migrateKeys).
	pfxRealmKey = 'k'
	pfxGroup    = 'g' // group -> global group key
	pfxRole     = 'r' // realm, group, user -> role bits
)

const (
	roleAdmin  = 1
	roleMember = 2
)

func makeKey(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += binary.MaxVarintLen32 + len(p)
	}
	b := make([]byte, 1, n)
	b[0] = prefix
	for _, p := range parts {
		b = appendString(b, p)
	}
	return b
}

// tokenKey is makeKey(pfxToken, realm, h) without the intermediate string
// conversion of h: it is built on every /valid.
func tokenKey(realm string, h Hash) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen32+len(realm)+len(h))
	b = append(b, pfxToken)
	b = appendString(b, realm)
	b = binary.AppendUvarint(b, uint64(len(h)))
	return append(b, h[:]...)
}
func currentKey(realm, user string) []byte { return makeKey(pfxCurrent, realm, user) }
