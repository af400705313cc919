package server_test

import (
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests pin answers of SessionKeyServer 1.5 that a differential run
// against the original found sks getting wrong (issue 13). Each states the
// original's exact bytes.

// TestReplaceAnswerBytes: the original answers /replace with the new token,
// the identity text and one more newline, a trailing blank line as /valid
// has: "<token>\n<user>\n<source>\n\n".
func TestReplaceAnswerBytes(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	tok := e.stored(t, "r", "alice", "t1")
	a := e.get(t, "/replace?realm=r&token="+tok)
	next, rest, _ := strings.Cut(a.body, "\n")
	if a.status != 200 || !tokenRE.MatchString(next) || rest != "alice\nstored\n\n" {
		t.Fatalf("replace: got %d %q, want 200 %q", a.status, a.body, "<token>\nalice\nstored\n\n")
	}
	// RCloud splits on "\n": token, user, source (and an empty last field
	// that strsplit drops).
	if f := strings.Split(strings.TrimSuffix(a.body, "\n"), "\n"); len(f) != 4 || f[1] != "alice" || f[2] != "stored" || f[3] != "" {
		t.Fatalf("replace fields: %q", f)
	}
	expect(t, "replacement is current", e.get(t, "/valid?realm=r&token="+next), 200, "YES\nalice\nstored\n\n")
	// A login identity with attribute lines ends the same way.
	login := e.login(t, "r", "bob")
	a = e.get(t, "/replace?realm=r&token="+login)
	if _, rest, _ := strings.Cut(a.body, "\n"); rest != "bob\nauth/Fake\nuid=1000\n\n" {
		t.Fatalf("replace of a login: got %q", a.body)
	}
}

// stored registers token tok for user through /stored_token (loopback is
// admin in newEnv) and returns it.
func (e *env) stored(t *testing.T, realm, user, tok string) string {
	t.Helper()
	a := e.get(t, "/stored_token?realm="+url.QueryEscape(realm)+"&user="+url.QueryEscape(user)+"&token="+url.QueryEscape(tok))
	if a.status != 200 || a.body != tok+"\n"+user+"\nstored\n" {
		t.Fatalf("stored_token %s for %s: got %d %q", tok, user, a.status, a.body)
	}
	return tok
}

// TestKeyEndpointsWithoutToken: /get_key and /gen_key answered an empty 403
// in the original for every request without a current token. RCloud
// hex-decodes their bodies, so sks's old "400 ERR: missing token" was taken
// for a key. The same holds for /group_hash (RCloud reads the hash) and the
// other group endpoints, whose protocol rule is "else 403 empty".
func TestKeyEndpointsWithoutToken(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	alice := e.login(t, "r", "alice")
	e.get(t, "/create_group?realm=r&group=g&token="+alice)
	old := e.login(t, "r", "bob")
	e.login(t, "r", "bob") // old is superseded now
	for _, path := range []string{"/get_key", "/gen_key", "/group_hash", "/mod_group", "/create_group"} {
		group := "&group=g"
		if path == "/create_group" {
			group = "&group=g2"
		}
		for what, q := range map[string]string{
			"missing token":    "",
			"empty token":      "&token=",
			"token twice":      "&token=" + alice + "&token=",
			"unknown token":    "&token=0123",
			"superseded token": "&token=" + old,
			"newline in token": "&token=a%0Ab",
			"NUL in token":     "&token=%00",
			"token too long":   "&token=" + strings.Repeat("a", 2000),
			"name not decoded": "&t%6Fken=" + alice,
		} {
			expect(t, path+", "+what, e.get(t, path+"?realm=r"+group+q), 403, "")
			expect(t, path+", "+what+", form", e.do(t, "POST", path, "realm=r"+group+q), 403, "")
		}
	}
	for _, path := range []string{"/group_hash", "/mod_group"} {
		expect(t, path+", missing group", e.get(t, path+"?realm=r&token="+alice), 403, "")
		expect(t, path+", empty group", e.get(t, path+"?realm=r&group=&token="+alice), 403, "")
		expect(t, path+", newline in group", e.get(t, path+"?realm=r&group=a%0Ab&token="+alice), 403, "")
	}
	// A missing realm stays the original's 400.
	expect(t, "get_key without realm", e.get(t, "/get_key?token="+alice), 400, "ERR: missing realm\n")
	// And with a current token the key endpoints still work.
	if a := e.get(t, "/gen_key?realm=r&token="+alice); a.status != 200 || !regexp.MustCompile(`^[0-9a-f]{128}$`).MatchString(a.body) {
		t.Fatalf("gen_key: %d %q", a.status, a.body)
	}
}

// TestMalformedTokensAreUnknown: the original looked any token up and
// answered as for an unknown one; RCloud reads the answers of /valid and
// /replace as data. A token with control characters, invalid UTF-8 or over
// 1024 bytes is never stored (/stored_token refuses it), so it is unknown.
func TestMalformedTokensAreUnknown(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	for what, tok := range map[string]string{
		"newline":       "a%0Ab",
		"NUL":           "%00",
		"DEL":           "a%7F",
		"invalid UTF-8": "%FF",
		"too long":      strings.Repeat("a", 1025),
		"empty":         "",
	} {
		expect(t, "valid, "+what, e.get(t, "/valid?realm=r&token="+tok), 200, "NO\n")
		expect(t, "revoke, "+what, e.get(t, "/revoke?realm=r&token="+tok), 200, "INVALID\n")
		expect(t, "replace, "+what, e.get(t, "/replace?realm=r&token="+tok), 403, "")
		expect(t, "replace form, "+what, e.do(t, "POST", "/replace", "realm=r&token="+tok), 403, "")
	}
	// /stored_token writes: it still refuses them with a message.
	expect(t, "stored_token", e.get(t, "/stored_token?realm=r&user=u&token=a%0Ab"), 400, "ERR: invalid token\n")
}

// TestParameterNamesNotDecoded: the original decoded values only; a
// percent-encoded name is another name. "re%61lm=r" is no realm.
func TestParameterNamesNotDecoded(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	tok := e.stored(t, "r", "alice", "t1")
	expect(t, "encoded realm name", e.get(t, "/valid?re%61lm=r&token="+tok), 400, "ERR: missing realm\n")
	expect(t, "encoded token name", e.get(t, "/valid?realm=r&t%6Fken="+tok), 200, "NO\n")
	expect(t, "encoded name in a form", e.do(t, "POST", "/valid", "realm=r&t%6Fken="+tok), 200, "NO\n")
	expect(t, "'+' in a name", e.get(t, "/valid?realm=r&token+="+tok), 200, "NO\n")
	// Values are decoded as before: '+' is a space, %XX a byte.
	expect(t, "encoded value", e.get(t, "/valid?realm=%72&token=%74%31"), 200, "YES\nalice\nstored\n\n")
	expect(t, "bad escape in a name is just a name", e.get(t, "/valid?realm=r&%zz=1&token=t1"), 200, "YES\nalice\nstored\n\n")
}

// TestEmptyPasswordIsAFailedLogin: the original failed the login for an
// empty or missing password (403, empty body: character(0) in R). sks
// answers 400 with a one-line message; RCloud counts a login as good only
// if the answer has more than two lines (token, user, source), so every
// refused login must answer at most two lines, none of them a token.
func TestEmptyPasswordIsAFailedLogin(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	for what, c := range map[string]struct {
		q      string
		status int
	}{
		"empty pwd":      {"user=alice&pwd=", 400},
		"missing pwd":    {"user=alice", 400},
		"encoded name":   {"user=alice&p%77d=pw", 400},
		"empty user":     {"user=&pwd=pw", 400},
		"missing user":   {"pwd=pw", 400},
		"bad user":       {"user=a%0Ab&pwd=pw", 400},
		"NUL in pwd":     {"user=alice&pwd=%00", 400},
		"wrong pwd":      {"user=alice&pwd=no", 403},
		"backend down":   {"user=down&pwd=pw", 503},
		"bad module":     {"user=alice&pwd=pw&module=a%0Ab", 400},
		"no such module": {"user=alice&pwd=pw&module=nope", 403},
	} {
		for _, path := range []string{"/auth_token", "/pam_token"} {
			for _, form := range []bool{false, true} {
				var a answer
				if form {
					a = e.do(t, "POST", path, "realm=r&module=Fake&"+c.q)
				} else {
					a = e.get(t, path+"?realm=r&module=Fake&"+c.q)
				}
				if path == "/pam_token" && a.status == 403 {
					// pam_token always uses PAM, which has no service here.
				} else if a.status != c.status {
					t.Errorf("%s %s (form %v): status %d, want %d", path, what, form, a.status, c.status)
				}
				if a.status == 200 {
					t.Errorf("%s %s: logged in: %q", path, what, a.body)
					continue
				}
				if !rcloudLoginFailed(a.body) {
					t.Errorf("%s %s (form %v): RCloud would take %q for a login", path, what, form, a.body)
				}
			}
		}
	}
	expect(t, "empty pwd", e.get(t, "/auth_token?realm=r&user=alice&pwd="), 400, "ERR: missing pwd\n")
}

// rcloudLoginFailed applies RCloud's test of an /auth_token answer:
// unlist(strsplit(body, "\n", TRUE)) must have more than two elements for
// a successful login. strsplit drops one trailing empty field.
func rcloudLoginFailed(body string) bool {
	f := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if body == "" {
		f = nil
	}
	return len(f) <= 2 && (len(f) == 0 || !tokenRE.MatchString(f[0]))
}

// TestTooManyParameters: at most 32 parameters per request (query and
// form body together), answered 400 at once. 10,000 distinct parameters
// took 0.4 s of CPU to parse before the limit.
func TestTooManyParameters(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	var q strings.Builder
	q.WriteString("realm=r")
	for i := range 31 {
		q.WriteString("&p" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "=1")
	}
	expect(t, "32 parameters", e.get(t, "/valid?"+q.String()), 200, "NO\n")
	expect(t, "33 parameters", e.get(t, "/valid?"+q.String()+"&x=1"), 400, "ERR: too many parameters (at most 32)\n")
	expect(t, "33 with the form body", e.do(t, "POST", "/valid?"+q.String(), "x=1"), 400, "ERR: too many parameters (at most 32)\n")
	var big strings.Builder
	big.WriteString("realm=r")
	for i := range 8000 {
		big.WriteString("&" + strconv.Itoa(i) + "=1")
	}
	expect(t, "8,000 parameters in a form", e.do(t, "POST", "/valid", big.String()), 400, "ERR: too many parameters (at most 32)\n")
	// Parts without '=' are ignored, as before, and do not count.
	expect(t, "parts without =", e.get(t, "/valid?realm=r&"+strings.Repeat("a&", 100)), 200, "NO\n")
}

// TestKeysAreGlobalPerIdentity: the original named a /gen_key key by the
// identity text alone, so a key made in realm r is returned by /get_key in
// realm r2 for the same identity. sks answered nothing in r2, and a client
// would then make a new key and lose the data encrypted under the old one.
func TestKeysAreGlobalPerIdentity(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	inR := e.login(t, "r", "alice")
	key := e.get(t, "/gen_key?realm=r&token="+inR).body
	inR2 := e.login(t, "r2", "alice")
	expect(t, "get_key in another realm", e.get(t, "/get_key?realm=r2&token="+inR2), 200, key)
	// gen_key in r2 replaces the one key of the identity, in every realm.
	key2 := e.get(t, "/gen_key?realm=r2&token="+inR2).body
	if key2 == key || len(key2) != 128 {
		t.Fatalf("gen_key in r2: %q", key2)
	}
	expect(t, "get_key in r after gen_key in r2", e.get(t, "/get_key?realm=r&token="+inR), 200, key2)
	// Another identity text (another source) has its own key.
	stored := e.stored(t, "r", "alice", "alice-stored")
	expect(t, "other source", e.get(t, "/get_key?realm=r&token="+stored), 200, "")
}

// TestTokenStoredAgainForAnotherUser: /stored_token T1 for alice, T1 for
// mallory, T2 for alice. The original answers "YES mallory" for T1: the
// token is mallory's current one, and alice's later login does not touch
// it. sks answered "SUPERCEDED mallory": alice's login superseded
// mallory's session.
func TestTokenStoredAgainForAnotherUser(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	e.stored(t, "r", "alice", "T1")
	e.stored(t, "r", "mallory", "T1")
	e.stored(t, "r", "alice", "T2")
	expect(t, "T1", e.get(t, "/valid?realm=r&token=T1"), 200, "YES\nmallory\nstored\n\n")
	expect(t, "T2", e.get(t, "/valid?realm=r&token=T2"), 200, "YES\nalice\nstored\n\n")
	// A login of alice through a module does not supersede it either.
	e.login(t, "r", "alice")
	expect(t, "T1 after alice logs in", e.get(t, "/valid?realm=r&token=T1"), 200, "YES\nmallory\nstored\n\n")
	expect(t, "T2 after alice logs in", e.get(t, "/valid?realm=r&token=T2"), 200, "SUPERCEDED\nalice\nstored\n\n")
	// mallory's own next token does.
	e.stored(t, "r", "mallory", "T3")
	expect(t, "T1 after mallory's next token", e.get(t, "/valid?realm=r&token=T1"), 200, "SUPERCEDED\nmallory\nstored\n\n")
}

// rawHTTP sends req on a new connection and returns everything read back.
func rawHTTP(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestIntendedDifferences pins the differences from the original that the
// README's table lists as intended, so that the table stays true.
func TestIntendedDifferences(t *testing.T) {
	e := newEnv(t, cfgFake, nil)
	addr := strings.TrimPrefix(e.url, "http://")
	// Methods are case-sensitive; the original compared them ignoring case.
	if got := rawHTTP(t, addr, "get /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400 ") || !strings.HasSuffix(got, "\r\n\r\nERR: missing realm\n") {
		t.Errorf("get /version: %q", got)
	}
	if got := rawHTTP(t, addr, "get /valid?realm=r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 404 ") || !strings.HasSuffix(got, "\r\n\r\nUnknown path") {
		t.Errorf("get /valid: %q", got)
	}
	// An HTTP/1.0 request gets an HTTP/1.0 status line.
	if got := rawHTTP(t, addr, "GET /version HTTP/1.0\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\n1.5\n") {
		t.Errorf("HTTP/1.0: %q", got)
	}
	// An empty realm is refused (the original hashed it like any other).
	expect(t, "empty realm", e.get(t, "/valid?realm=&token=x"), 400, "ERR: invalid realm\n")
	// Invalid UTF-8 in a user name (the original decoded it to U+FFFD).
	expect(t, "invalid UTF-8 user", e.get(t, "/auth_token?realm=r&user=a%FF&pwd=pw"), 400, "ERR: invalid user\n")
	// A malformed escape: the original dropped the connection.
	expect(t, "malformed escape", e.get(t, "/valid?realm=r&token=%zz"), 400, "ERR: malformed query: malformed percent-encoding\n")
	// Tokens are 64 hex characters.
	if tok := e.login(t, "r", "alice"); len(tok) != 64 {
		t.Errorf("token length %d", len(tok))
	}
}
