package ldap

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/sks-server/sks/testrig"
)

var spellingOnce sync.Once

// spellingSubtree adds ou=spelling with users whose stored names test
// spelling variants: "José" (NFC, capital J), "Carol" and "dave".
func spellingSubtree(t *testing.T, s *testrig.Slapd) string {
	t.Helper()
	base := "ou=spelling," + suffix
	spellingOnce.Do(func() {
		c, err := goldap.DialURL(s.PlainURL())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Bind(testrig.LDAPRootDN, testrig.LDAPRootPW); err != nil {
			t.Fatal(err)
		}
		add := func(dn string, attrs map[string][]string) {
			r := goldap.NewAddRequest(dn, nil)
			for k, v := range attrs {
				r.Attribute(k, v)
			}
			if err := c.Add(r); err != nil {
				t.Fatalf("add %s: %v", dn, err)
			}
		}
		add(base, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"spelling"}})
		for i, u := range []string{"Jos\u00e9", "Carol", "dave"} {
			add("uid="+u+","+base, map[string][]string{
				"objectClass": {"inetOrgPerson"}, "cn": {u}, "sn": {u}, "uid": {u},
				"userPassword": {"pw-" + strings.ToLower(u)}, "employeeNumber": {string(rune('1' + i))},
			})
		}
	})
	return base
}

// TestIdentityIsTheStoredSpelling: without user_attribute the identity is
// the naming attribute's stored value, derived from the user filter or
// the DN template, whatever spelling of it the directory matched: case,
// fullwidth forms, NFD.
func TestIdentityIsTheStoredSpelling(t *testing.T) {
	s := sharedSlapd(t)
	base := spellingSubtree(t, s)
	cfgs := map[string]Config{
		"search": {URLs: []string{s.PlainURL()}, BindDN: readerDN, BindPassword: readerPW, BaseDN: base, UserFilter: "(&(objectClass=inetOrgPerson)(uid=%s))"},
		"direct": {URLs: []string{s.PlainURL()}, UserDNTemplate: "uid=%s," + base},
	}
	cases := []struct{ typed, pw, want string }{
		{"carol", "pw-carol", "Carol"},
		{"CAROL", "pw-carol", "Carol"},
		{"Carol", "pw-carol", "Carol"},
		{"DAVE", "pw-dave", "dave"},
		{"jos\u00e9", "pw-jos\u00e9", "Jos\u00e9"},      // NFC, other case
		{"Jose\u0301", "pw-jos\u00e9", "Jos\u00e9"},     // NFD
		{"\uff44\uff41\uff56\uff45", "pw-dave", "dave"}, // fullwidth ｄａｖｅ
	}
	for name, cfg := range cfgs {
		t.Run(name, func(t *testing.T) {
			l := open(t, cfg)
			if l.nameAttr != "uid" || !l.derived {
				t.Fatalf("naming attribute %q (derived %v), want uid derived", l.nameAttr, l.derived)
			}
			for _, c := range cases {
				id, ok, err := l.Login(context.Background(), c.typed, c.pw)
				if err != nil {
					t.Fatalf("Login(%q): %v", c.typed, err)
				}
				if !ok {
					// slapd (2.5) matches every one of these spellings
					// (caseIgnoreMatch folds case and compatibility forms).
					t.Fatalf("Login(%q): refused", c.typed)
				}
				if id.User != c.want {
					t.Errorf("Login(%q) = identity %q, want the stored %q", c.typed, id.User, c.want)
				}
			}
		})
	}
}

// TestUnknownNamingAttributeRefusesNonNFKC: when neither user_attribute
// nor the filter says which attribute holds the name, Open warns and
// names not in NFKC are refused before any bind.
func TestUnknownNamingAttributeRefusesNonNFKC(t *testing.T) {
	s := sharedSlapd(t)
	base := spellingSubtree(t, s)
	var logs bytes.Buffer
	cfg := Config{URLs: []string{s.PlainURL()}, BindDN: readerDN, BindPassword: readerPW, BaseDN: base,
		UserFilter: "(|(uid=%s)(cn=%s))"}
	l, err := Open(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "user_attribute") {
		t.Errorf("no start-up warning naming user_attribute:\n%s", logs.String())
	}
	for _, typed := range []string{"jose\u0301", "\uff44\uff41\uff56\uff45"} {
		if _, ok, err := l.Login(context.Background(), typed, "pw-jos\u00e9"); ok || err != nil {
			t.Errorf("Login(%q) = ok %v err %v, want refused", typed, ok, err)
		}
		if _, ok, _ := l.Login(context.Background(), typed, "pw-dave"); ok {
			t.Errorf("Login(%q) logged in", typed)
		}
	}
	if id, ok, err := l.Login(context.Background(), "dave", "pw-dave"); !ok || err != nil || id.User != "dave" {
		t.Errorf("Login(dave) = %+v %v %v, want dave", id, ok, err)
	}
}

func TestNamingAttribute(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{UserFilter: "(uid=%s)"}, "uid"},
		{Config{UserFilter: "(&(objectClass=posixAccount)(uid=%s))"}, "uid"},
		{Config{UserFilter: "(&(objectClass=user)(sAMAccountName=%s))"}, "sAMAccountName"},
		{Config{UserFilter: "(|(uid=%s)(UID=%s))"}, "UID"},
		{Config{UserFilter: "(|(uid=%s)(mail=%s))"}, ""},
		{Config{UserFilter: "(uid=%s*)"}, ""},
		{Config{UserFilter: "(&(uid=%s)(cn=*%s*))"}, ""},
		{Config{UserDNTemplate: "uid=%s,ou=people,dc=example,dc=org"}, "uid"},
		{Config{UserDNTemplate: "cn=%s,ou=people,dc=example,dc=org"}, "cn"},
		{Config{UserDNTemplate: "%s@example.org"}, ""},
		{Config{UserDNTemplate: "cn=x,uid=%s,dc=example,dc=org"}, ""},
	} {
		if got := namingAttribute(c.cfg); got != c.want {
			t.Errorf("namingAttribute(%+v) = %q, want %q", c.cfg, got, c.want)
		}
	}
}
