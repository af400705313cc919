package cmd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
)

// checkText writes config to a file and runs CheckConfig on it.
func checkText(t *testing.T, config string, connect bool) (*checkReport, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sks.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := CheckConfig(context.Background(), path, connect, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r, path
}

// TestCheckConfigErrors: each kind of error is reported with the line of
// the setting at fault, and all of them at once.
func TestCheckConfigErrors(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose-token")
	os.WriteFile(loose, []byte("secret\n"), 0o644)
	tight := filepath.Join(dir, "tight-token")
	os.WriteFile(tight, []byte("secret\n"), 0o600)
	cases := []struct {
		name   string
		config string
		want   []string // "LINE: error: text"
	}{
		{"unknown default module", "listen = \":1\"\ndefault_module = \"foo\"\n", []string{`2: error: default_module "foo"`}},
		{"realm naming a missing module", "[realms.r]\nmodules = [\"pam\",\n  \"corp\"]\n", []string{`2: error: realm r: module "corp" has no [modules.corp] section`}},
		{"realm default not a module", "[realms.r]\n\ndefault = \"corp\"\n", []string{`3: error: realm r: default module "corp": no such login module`}},
		{"unknown setting", "\n\nlistn = \":1\"\n", []string{"3: error: unknown setting listn"}},
		{"unknown setting in a table", "[admin]\nallow_loopbak = true\n", []string{"2: error: unknown setting admin.allow_loopbak"}},
		{"syntax error", "listen = \":1\"\nlisten = \n", []string{"2: error: "}},
		{"loose secret file", "[admin]\ntoken_file = \"" + loose + "\"\n", []string{"2: error: admin token_file " + loose + " is readable by group or others (mode 0644); run chmod 600"}},
		{"unreadable secret file", "# x\n[admin]\n  token_file = \"" + dir + "/missing\"\n", []string{"3: error: cannot open admin token_file"}},
		{"unknown module setting", "[modules.corp]\ntype = \"static\"\nusers = {}\nuser = 1\n", []string{"4: error: module corp: unknown setting user"}},
		{"module that cannot open", "[modules.krb]\ntype = \"kerberos\"\nkrb5conf = \"/nonexistent/krb5.conf\"\n", []string{"1: error: module krb: "}},
		{"data_dir with redis", "data_dir = \"/var/lib/sks\"\n[tokens.redis]\naddrs = [\"127.0.0.1:1\"]\n", []string{"1: error: data_dir"}},
		{"bad log format", "log_format = \"xml\"\n", []string{"1: error: log_format"}},
		{"several at once", "default_module = \"x\"\n[realms.r]\nmodules = [\"y\"]\n[admin]\ntoken_file = \"" + loose + "\"\n",
			[]string{"1: error: default_module", "3: error: realm r: module \"y\"", "5: error: admin token_file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, path := checkText(t, c.config, false)
			var out strings.Builder
			r.write(&out)
			if r.errorsCount() != len(c.want) {
				t.Errorf("%d errors, want %d:\n%s", r.errorsCount(), len(c.want), out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), path+":"+w) {
					t.Errorf("report lacks %q:\n%s", path+":"+w, out.String())
				}
			}
		})
	}
	t.Run("clean", func(t *testing.T) {
		r, _ := checkText(t, "[admin]\ntoken_file = \""+tight+"\"\n[modules.corp]\ntype = \"static\"\nusers = {}\n[realms.r]\nmodules = [\"corp\"]\ndefault = \"corp\"\n", false)
		var out strings.Builder
		r.write(&out)
		if len(r.list) != 0 {
			t.Errorf("findings for a clean config:\n%s", out.String())
		}
	})
}

// TestCheckConfigConnect: --connect reaches a real slapd and KDC, and
// reports each one that is down with its section's line.
// backendModules is the configuration of an LDAP module "corp" on s and a
// Kerberos module "krb" on k, each with a 1 s timeout.
func backendModules(s *testrig.Slapd, k *testrig.KDC) string {
	return fmt.Sprintf(`[modules.corp]
type = "ldap"
urls = [%q]
bind_dn = %q
bind_password = %q
base_dn = %q
user_filter = "(uid=%%s)"
timeout = "1s"

[modules.krb]
type = "kerberos"
krb5conf = %q
keytab = %q
service_principal = "HTTP/localhost"
timeout = "1s"
`, s.PlainURL(), testrig.LDAPReaderDN, testrig.LDAPReaderPW, testrig.LDAPSuffix, k.Krb5Conf, k.Keytab)
}

func TestCheckConfigConnect(t *testing.T) {
	testrig.RequireKDC(t)
	s := testrig.StartSlapd(t, t.TempDir())
	k := testrig.StartKDC(t, t.TempDir())
	config := backendModules(s, k)
	r, _ := checkText(t, config, true)
	var out strings.Builder
	r.write(&out)
	if r.errorsCount() != 0 {
		t.Fatalf("backends up:\n%s", out.String())
	}
	s.Proc.Stop()
	k.Proc.Stop()
	r, path := checkText(t, config, true)
	out.Reset()
	r.write(&out)
	for _, w := range []string{":1: error: module corp: backend not reachable", ":10: error: module krb: backend not reachable"} {
		if !strings.Contains(out.String(), path+w) {
			t.Errorf("report lacks %q:\n%s", w, out.String())
		}
	}
	// Without --connect nothing is dialled.
	if r, _ := checkText(t, config, false); r.errorsCount() != 0 {
		t.Errorf("errors without --connect: %+v", r.list)
	}
}

// TestCheckConfigBinary: the command's exit status and output format.
func TestCheckConfigBinary(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("default_module = \"foo\"\n"), 0o600)
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("default_module = \"pam\"\n"), 0o600)
	b, err := exec.Command(sksBinary, "check-config", "-c", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(b), bad+":1: error: default_module \"foo\"") {
		t.Errorf("check-config of a bad file: %v\n%s", err, b)
	}
	if b, err := exec.Command(sksBinary, "check-config", "-c", good).CombinedOutput(); err != nil || !strings.Contains(string(b), good+": ok") {
		t.Errorf("check-config of a good file: %v\n%s", err, b)
	}
}

// TestServeRefusesBrokenConfig: what check-config reports, serve refuses
// to start with (before, "sks -default foo" started and every login was
// 403; "-d" was silently ignored with [tokens.redis]).
func TestServeRefusesBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	redis := filepath.Join(dir, "redis.toml")
	os.WriteFile(redis, []byte("[tokens.redis]\naddrs = [\"127.0.0.1:1\"]\n"), 0o600)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown default module", []string{"-default", "foo"}, `default_module "foo" (or -default): no such login module`},
		{"-d with redis", []string{"-c", redis, "-d", filepath.Join(dir, "data")}, "is not used when [tokens.redis] is set"},
		{"bad log format", []string{"-log-format", "xml"}, "log_format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(sksBinary, append(c.args, "-l", "127.0.0.1", "-p", fmt.Sprint(testrig.FreePort(t)))...)
			done := make(chan struct{})
			var b []byte
			var err error
			go func() { b, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("sks %v started: %s", c.args, b)
			}
			if err == nil || !strings.Contains(string(b), c.want) {
				t.Errorf("sks %v: %v %q, want refusal %q", c.args, err, b, c.want)
			}
		})
	}
}
