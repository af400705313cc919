package cmd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryCommandHelp: each subcommand answers -h, -help and --help with
// its usage on stdout and exit status 0, without doing its work (before,
// generate-secret -h printed a secret, hash-password -h read stdin and
// version -h printed the version).
func TestEveryCommandHelp(t *testing.T) {
	names := []string{"serve"}
	for n := range commands() {
		if n != "serve" {
			names = append(names, n)
		}
	}
	for _, name := range names {
		for _, flag := range []string{"-h", "-help", "--help"} {
			t.Run(name+flag, func(t *testing.T) {
				c := exec.Command(sksBinary, name, flag)
				c.Stdin = strings.NewReader("secret-password\n")
				c.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
				var out, errb bytes.Buffer
				c.Stdout, c.Stderr = &out, &errb
				if err := c.Run(); err != nil {
					t.Fatalf("sks %s %s: %v\nstdout %q\nstderr %q", name, flag, err, out.String(), errb.String())
				}
				got := strings.ToLower(out.String())
				if !strings.Contains(got, "usage") {
					t.Errorf("sks %s %s: stdout %q has no usage", name, flag, out.String())
				}
				if strings.Contains(got, "$2a$") || strings.Contains(got, "sks 0.") && name == "version" && !strings.Contains(got, "usage: sks version") {
					t.Errorf("sks %s %s did its work instead of helping: %q", name, flag, out.String())
				}
				if name == "generate-secret" && len(strings.TrimSpace(out.String())) == 64 {
					t.Errorf("generate-secret %s printed a secret: %q", flag, out.String())
				}
			})
		}
	}
	t.Run("--version", func(t *testing.T) {
		b, err := exec.Command(sksBinary, "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(b), "sks ") {
			t.Errorf("sks --version: %v %q", err, b)
		}
	})
	t.Run("help CMD", func(t *testing.T) {
		b, err := exec.Command(sksBinary, "help", "check-config").CombinedOutput()
		if err != nil || !strings.Contains(string(b), "usage: sks check-config") {
			t.Errorf("sks help check-config: %v %q", err, b)
		}
	})
}

func TestGenerateSecretOut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master-token")
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"generate-secret", "--out", path}, &out, &out); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	secret := strings.TrimSpace(string(b))
	if len(secret) < 32 {
		t.Errorf("secret %q too short", secret)
	}
	if strings.Contains(out.String(), secret) {
		t.Error("the secret was printed as well as written")
	}
	if !strings.Contains(out.String(), path) || !filepath.IsAbs(path) {
		t.Errorf("output %q does not name %s", out.String(), path)
	}
	// Never replace an existing secret.
	if err := Run(context.Background(), []string{"generate-secret", "--out", path}, &out, &out); err == nil {
		t.Error("generate-secret replaced an existing file")
	}
	if b2, _ := os.ReadFile(path); !bytes.Equal(b, b2) {
		t.Error("existing secret changed")
	}
}

// TestGenKeypairAbsolutePaths: the paths printed are absolute, so they
// can be pasted into a config read from /etc/sks.
func TestGenKeypairAbsolutePaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"gen-keypair", "-dir", "keys"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "keys", "*.key"))
	if len(keys) != 1 {
		t.Fatalf("key files %v", keys)
	}
	priv := keys[0]
	if !strings.Contains(out.String(), "signing_key = \""+priv+"\"") {
		t.Errorf("output %q does not name %s", out.String(), priv)
	}
	if fi, err := os.Stat(priv); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key: %v", err)
	}
}

func TestObtainTokenMasterSources(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("m\n"), 0o644)
	unreachable := "--server-url=http://127.0.0.1:1"
	cases := []struct {
		name    string
		args    []string
		env     string
		wantErr string
		wantOut string
	}{
		{"none", []string{unreachable}, "", "no master token", ""},
		{"loose file", []string{"--master-file", loose, unreachable}, "", "chmod 600", ""},
		{"argv is deprecated", []string{"m", unreachable}, "", "", "deprecated"},
		{"env", []string{unreachable}, "m", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SKS_MASTER_TOKEN", c.env)
			var out bytes.Buffer
			err := Run(context.Background(), append([]string{"obtain-token"}, c.args...), &out, &out)
			if err == nil {
				t.Fatal("obtain-token against no server succeeded")
			}
			if c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("err %v, want %q", err, c.wantErr)
			}
			if c.wantErr == "" && strings.Contains(err.Error(), "no master token") {
				t.Errorf("master token not taken: %v", err)
			}
			if !strings.Contains(out.String(), c.wantOut) {
				t.Errorf("output %q, want %q", out.String(), c.wantOut)
			}
		})
	}
}

// TestLoginChecksServerFirst: a wrong URL or CA file fails before the
// password is asked for.
func TestLoginChecksServerFirst(t *testing.T) {
	srv, _, _ := demoServer(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing listening", []string{"--server", "http://127.0.0.1:1"}, "cannot use server"},
		{"not an sks server", []string{"--server", srv + "/nothing/"}, "not an sks server"},
		{"missing CA file", []string{"--server", srv, "--ca-file", "/nonexistent/ca.pem"}, "CA file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(sksBinary, append(append([]string{"login", "--realm", "demo"}, c.args...), "demo")...)
			cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
			b, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(b), c.want) || strings.Contains(string(b), "Password") {
				t.Errorf("login: %v %q, want failure %q before any prompt", err, b, c.want)
			}
		})
	}
}
