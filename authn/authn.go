// Package authn defines the one small interface every login module implements,
// and the identity a successful login yields.
package authn

import (
	"context"
	"errors"
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Attr is one extra identity line, written as "name=value" after the source
// line of a token's identity text (for example uid=1000).
type Attr struct {
	Name  string
	Value string
}

// Identity is what a login module knows about a user after a successful login.
type Identity struct {
	// User is the user name as it goes into the identity text.
	User string
	// Attrs are extra identity lines, in the order they are written.
	Attrs []Attr
	// Roles are group memberships or configured roles, kept with the session
	// for signed tokens; they are not part of the identity text.
	Roles []string
}

// Module checks a user's password against one backend.
//
// A wrong password or unknown user is (Identity{}, false, nil). A non-nil error
// means the backend could not give an answer (down, timeout, misconfigured);
// the HTTP layer answers 503 for it, never 403, so that an outage does not
// look like a wrong password.
type Module interface {
	Login(ctx context.Context, user, password string) (Identity, bool, error)
}

// Canonicalizer is implemented by modules that accept several spellings of
// one account beyond case and Unicode compatibility forms (which the
// brute-force guard folds itself): Kerberos takes "alice" and
// "alice@DEFAULT.REALM" for one principal. CanonicalUser returns the one
// spelling that failures are counted against; it must not fail.
type Canonicalizer interface {
	CanonicalUser(user string) string
}

// ErrUnavailable marks errors that mean the backend could not be reached or
// did not answer in time. Modules wrap it so callers can classify with errors.Is.
var ErrUnavailable = errors.New("login backend unavailable")

// ErrBadInput is returned by ValidUser for names that must never reach a backend.
var ErrBadInput = errors.New("user name not acceptable")

// MaxUserLen bounds user names; no directory needs more and it keeps logs sane.
const MaxUserLen = 256

// ValidUser reports whether a user name is safe to pass to any backend and to
// write into an identity text: non-empty, bounded, no control characters
// (newline, NUL, DEL, C1), valid UTF-8 and no leading or trailing space.
func ValidUser(user string) error {
	if !Printable(user, MaxUserLen) || strings.TrimSpace(user) != user {
		return ErrBadInput
	}
	return nil
}

// Printable reports whether s is non-empty, at most max bytes, valid UTF-8
// and free of control characters (C0, DEL, C1): nothing that could split or
// forge a line of the protocol's answers, a header or a log line.
func Printable(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// ValidPassword reports whether a password may be passed to a backend:
// non-empty (an empty password is an unauthenticated bind in LDAP), bounded,
// and without NUL (C APIs such as PAM would truncate it there).
func ValidPassword(pw string) bool {
	return pw != "" && len(pw) <= 4096 && !strings.ContainsRune(pw, 0)
}

var folder = cases.Fold()

// FoldUser is the comparison form of a user name: surrounding white space
// trimmed, Unicode compatibility forms folded (NFKC: fullwidth "ｂｏｂ" is
// "bob", NFD "jose\u0301" is "josé") and case folded. Two names with one
// FoldUser are, for a directory with case-insensitive matching, one
// account: the brute-force guard counts them together and the LDAP module
// picks the stored spelling by it.
func FoldUser(user string) string {
	s := strings.TrimFunc(user, unicode.IsSpace)
	s = norm.NFKC.String(s)
	s = folder.String(s)
	return norm.NFKC.String(s)
}

// IsNFKC reports whether user is in Unicode normalization form KC. Modules
// that cannot learn the stored spelling of a name refuse other forms, so
// that one account cannot become several identities by its spelling.
func IsNFKC(user string) bool { return norm.NFKC.IsNormalString(user) }
